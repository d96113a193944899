#include "models/layers.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "core/error.h"
#include "heads/detect.h"
#include "heads/dfl_detect.h"

using namespace revkit;

namespace {
LayerArgs row(const std::string& type, nlohmann::json args, std::vector<int64_t> in_channels, int64_t repeats = 1,
              int64_t row_number = 3) {
  LayerArgs a;
  a.source = "test.yaml";
  a.row = row_number;
  a.type = type;
  a.args = std::move(args);
  a.in_channels = std::move(in_channels);
  a.repeats = repeats;
  return a;
}
}  // namespace

TEST_CASE("the registered layers are exactly these, and backbones are found through their own registry") {
  const std::vector<std::string> expected = {"Bottleneck", "C2f",    "C3",   "Concat",
                                             "Conv",       "Detect", "SPPF", "nn.Upsample"};
  CHECK(layer_registry().names() == expected);
  for (const auto& e : layer_registry().entries()) CHECK_FALSE(e.description.empty());
  CHECK(find_layer("revcol_tiny"));
  CHECK_THROWS_WITH_AS(
      find_layer("Conv2"),
      doctest::Contains("unknown layer 'Conv2' (layers: Bottleneck, C2f, C3, Concat, Conv, Detect, SPPF, "
                        "nn.Upsample; backbones: revcol_base"),
      UnknownNameError);
  // weights trained on a plugin's backbone, read without the plugin: say what is missing
  CHECK_THROWS_WITH_AS(
      find_layer("tinyrev"),
      doctest::Contains("; a plugin's backbone needs the plugin loaded, with --plugin or REVKIT_PLUGINS)"),
      UnknownNameError);
}

TEST_CASE("conformance: every layer type builds from a minimal row and runs forward and backward") {
  struct Case {
    std::string type;
    nlohmann::json args;
    std::vector<int64_t> in;
    int64_t size;
  };
  const std::vector<Case> cases = {
      {"Conv", {8, 3, 2}, {4}, 8},
      {"Bottleneck", {8}, {8}, 8},
      {"C3", {8}, {4}, 8},
      {"C2f", {8, true}, {4}, 8},
      {"SPPF", {8, 5}, {4}, 8},
      {"Concat", {1}, {4, 4}, 8},
      {"nn.Upsample", {nullptr, 2, "nearest"}, {4}, 8},
      {"Detect", {2, {{10, 13, 16, 30}, {30, 61, 62, 45}}}, {4, 4}, 8},
  };
  std::vector<std::string> covered;
  for (const auto& c : cases) {
    INFO(c.type);
    BuiltLayer built = find_layer(c.type)(row(c.type, c.args, c.in));
    std::vector<at::Tensor> inputs;
    for (int64_t ch : c.in) inputs.push_back(at::randn({2, ch, c.size, c.size}).requires_grad_());
    auto outs = built.forward(inputs);
    REQUIRE_FALSE(outs.empty());
    at::Tensor loss = at::zeros({});
    for (const auto& o : outs) loss = loss + o.pow(2).mean();
    loss.backward();
    for (const auto& x : inputs) CHECK(x.grad().defined());
    for (const auto& p : built.module->parameters()) CHECK(p.grad().defined());
    if (!built.head) CHECK(outs[0].size(1) == built.out_channels[0]);
    covered.push_back(c.type);
  }
  for (const char* backbone : {"revcol_tiny", "revcol_small", "revcol_base", "revcol_large", "revcol_xlarge"}) {
    BuiltLayer built = find_layer(backbone)(row(backbone, nlohmann::json::array(), {3}, 1, 0));
    CHECK(built.backbone);
    CHECK(built.out_channels.size() == 4);
    covered.push_back(backbone);
  }
  // One forward and backward through the smallest backbone.
  BuiltLayer tiny = find_layer("revcol_tiny")(row("revcol_tiny", nlohmann::json::array(), {3}, 1, 0));
  auto maps = tiny.forward({at::randn({1, 3, 32, 32})});
  (maps[3].mean() + maps[0].mean()).backward();
  for (const auto& p : tiny.module->named_parameters())  // the first column's alphas scale a zero state
    if (p.key().find("subnet0.alpha") == std::string::npos) CHECK(p.value().grad().defined());
  std::sort(covered.begin(), covered.end());
  std::vector<std::string> known = layer_registry().names();
  for (const auto& b : {"revcol_tiny", "revcol_small", "revcol_base", "revcol_large", "revcol_xlarge"})
    known.push_back(b);
  std::sort(known.begin(), known.end());
  CHECK(covered == known);
}

TEST_CASE("Ultralytics conventions: width scaling and repeats") {
  CHECK(make_divisible(1024 * 0.25) == 256);
  CHECK(make_divisible(64 * 0.33) == 24);
  auto a = row("Conv", {64, 3}, {3});
  a.width_multiple = 0.5;
  CHECK(find_layer("Conv")(a).out_channels[0] == 32);
  auto repeated = find_layer("Conv")(row("Conv", {8}, {4}, 3));
  CHECK(repeated.module->children().size() == 3);  // nn.Sequential of three
  auto c3 = find_layer("C3")(row("C3", {8, false}, {4}, 3));
  CHECK(c3.args_text == "4, 8, 3, False");
}

TEST_CASE("row errors name the row, the layer type and the problem") {
  auto build = [](const LayerArgs& a) { return find_layer(a.type)(a); };
  CHECK_THROWS_WITH_AS(build(row("Conv", nlohmann::json::array(), {3})),
                       "test.yaml: row 3 (Conv): expected 1 to 7 arguments, got 0", InputError);
  CHECK_THROWS_WITH(build(row("Conv", {"wide"}, {3})),
                    "test.yaml: row 3 (Conv): argument 0 (output channels) must be an integer, got \"wide\"");
  CHECK_THROWS_WITH(build(row("C3", {16, 2}, {3})),
                    "test.yaml: row 3 (C3): argument 1 (shortcut) must be true or false, got 2");
  CHECK_THROWS_WITH(build(row("Concat", {1}, {3})), doctest::Contains("needs at least two inputs"));
  CHECK_THROWS_WITH(build(row("Detect", {0, 3}, {8, 8, 8})), doctest::Contains("number of classes must be positive"));
  CHECK_THROWS_WITH(build(row("Detect", {2, {{10, 13}}}, {8, 8})), doctest::Contains("1 anchor levels for 2 inputs"));
  CHECK_THROWS_WITH(build(row("revcol_tiny", {1}, {3}, 1, 0)), doctest::Contains("expected 0 arguments, got 1"));
  CHECK_THROWS_WITH(build(row("revcol_tiny", {}, {3})),
                    "test.yaml: row 3 (revcol_tiny): a backbone with several outputs must be row 0");
  // A negative padding is no autopad (only null is); an integer past int64 does not wrap; a head is not repeated.
  CHECK_THROWS_WITH(build(row("Conv", {16, 3, 1, -5}, {3})),
                    "test.yaml: row 3 (Conv): padding must be 0 or more (or null: autopad), got -5");
  CHECK(build(row("Conv", {16, 3, 1, nullptr}, {3})).module != nullptr);
  CHECK_THROWS_WITH(
      build(row("Conv", {uint64_t{1} << 63}, {3})),
      "test.yaml: row 3 (Conv): argument 0 (output channels) must be an integer, got 9223372036854775808");
  CHECK_THROWS_WITH(build(row("Detect", {2, 3}, {8, 8, 8}, 2)),
                    "test.yaml: row 3 (Detect): a detection head cannot be repeated (number must be 1)");
  auto detect = build(row("Detect", {2, 3}, {8, 8, 8}));  // an anchor count: YOLOv5's defaults
  CHECK(std::dynamic_pointer_cast<DetectImpl>(detect.head)->num_anchors() == 3);
}

TEST_CASE("Detect: anchors make YOLOv5's head, [nc] alone Ultralytics 8's") {
  auto build = [](const LayerArgs& a) { return find_layer(a.type)(a); };
  const BuiltLayer v5 = build(row("Detect", {2, 3}, {8, 8, 8}));
  CHECK(std::dynamic_pointer_cast<DetectImpl>(v5.head));
  CHECK(v5.out_channels == std::vector<int64_t>{7});
  const BuiltLayer v8 = build(row("Detect", {2}, {8, 16, 32}));
  REQUIRE(std::dynamic_pointer_cast<DflDetectImpl>(v8.head));
  CHECK(v8.head->num_levels() == 3);
  CHECK(v8.out_channels == std::vector<int64_t>{2 + 64});
  CHECK(v8.args_text == "2, 3 levels, reg_max 16");
  CHECK_THROWS_WITH(build(row("Detect", {0}, {8, 8, 8})), doctest::Contains("number of classes must be positive"));
}

TEST_CASE("Ultralytics 8's channel rule: min(c, max_channels) * width, made divisible by 8") {
  LayerArgs a = row("Conv", {1024, 3, 2}, {64});
  a.width_multiple = 0.75;
  CHECK(a.scaled_channels(1024) == 768);  // no cap: YOLOv5's rule
  a.max_channels = 768;
  CHECK(a.scaled_channels(1024) == 576);  // yolov8m's last stage: 768 x 0.75
  CHECK(a.scaled_channels(100) == 80);    // 75 up to a multiple of 8
}
