#include "models/detection_model.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "backbones/backbone.h"
#include "core/autocast_state.h"
#include "core/config.h"
#include "core/error.h"
#include "core/flops.h"
#include "core/weights.h"
#include "heads/detect.h"
#include "heads/dfl_detect.h"
#include "reversible/reversible_module.h"
#include "reversible/testing.h"

using namespace revkit;

namespace {
nlohmann::json seed_config() { return load_model_config("yolov5-revcol-tiny"); }
}  // namespace

TEST_CASE("yolov5n, yolov5s and yolov5m build to the published parameter counts") {
  CHECK(count_parameters(*build_model("yolov5n")) == 1872157);
  CHECK(count_parameters(*build_model("yolov5s")) == 7235389);
  CHECK(count_parameters(*build_model("yolov5m")) == 21190557);
  auto n = build_model("yolov5n");
  CHECK(n->strides() == std::vector<double>{8, 16, 32});
  CHECK(n->layers().size() == 25);
  CHECK(n->layers()[13].from == std::vector<int64_t>{12});
  CHECK(n->layers()[24].from == std::vector<int64_t>{17, 20, 23});
}

TEST_CASE("the seed's config: three maps at 256x256, strides 8, 16, 32, gradients everywhere in every mode") {
  at::manual_seed(0);
  DetectionModel model(seed_config(), "yolov5-revcol-tiny");
  CHECK(model->strides() == std::vector<double>{8, 16, 32});
  CHECK(model->layers()[0].position == 1);  // four maps take positions 1-4
  CHECK(model->layers()[1].position == 5);
  CHECK(model->layers()[4].from == std::vector<int64_t>{7, 3});  // [-1, 3]: the stride-16 map
  CHECK(model->layers().back().from == std::vector<int64_t>{13, 16, 19});
  CHECK(reversible::reversible_modules(*model).size() == 1);
  for (auto mode : {reversible::MemoryMode::Off, reversible::MemoryMode::Column, reversible::MemoryMode::Full}) {
    INFO(reversible::to_string(mode));
    reversible::set_memory_mode(*model, mode);
    model->zero_grad();
    auto outs = model->forward(at::randn({1, 3, 256, 256}));
    REQUIRE(outs.size() == 3);
    CHECK(outs[0].sizes() == at::IntArrayRef({1, 3, 32, 32, 85}));
    CHECK(outs[1].sizes() == at::IntArrayRef({1, 3, 16, 16, 85}));
    CHECK(outs[2].sizes() == at::IntArrayRef({1, 3, 8, 8, 85}));
    (outs[0].mean() + outs[1].mean() + outs[2].mean()).backward();
    int64_t missing = 0;
    for (const auto& p : model->named_parameters())
      if (!p.value().grad().defined() && p.key().find("subnet0.alpha") == std::string::npos) ++missing;
    CHECK(missing == 0);  // (the first column's alphas multiply a zero state)
  }
  model->eval();
  at::NoGradGuard no_grad;
  CHECK(model->forward(at::zeros({1, 3, 64, 64}))[0].sizes() == at::IntArrayRef({1, 3 * (64 + 16 + 4), 85}));
}

TEST_CASE("JSON and YAML forms of one model: same parameters, same outputs for the same weights") {
  const nlohmann::json yaml_cfg = seed_config();
  const nlohmann::json json_cfg = parse_config_text(yaml_cfg.dump(), "model.json", /*yaml=*/false);
  at::manual_seed(1);
  DetectionModel a(yaml_cfg, "yaml");
  DetectionModel b(json_cfg, "json");
  CHECK(count_parameters(*a) == count_parameters(*b));
  {
    at::NoGradGuard no_grad;
    auto pb = b->named_parameters();
    for (const auto& p : a->named_parameters()) pb[p.key()].copy_(p.value());
  }
  a->eval();
  b->eval();
  at::NoGradGuard no_grad;
  at::Tensor x = at::randn({1, 3, 64, 64});
  CHECK(at::equal(a->forward(x)[0], b->forward(x)[0]));
}

TEST_CASE("overrides: nc and the backbone's settings, all the way to its reversible part") {
  ModelOverrides o;
  o.num_classes = 3;
  o.backbone.memory_mode = reversible::MemoryMode::Full;
  o.backbone.store_every = 2;
  o.backbone.recompute_chunks = 2;
  o.backbone.keep_columns = 1;
  o.backbone.memory_budget_mb = 300;
  auto model = build_model("yolov5-revcol-tiny", o);
  CHECK(model->num_classes() == 3);
  CHECK(std::dynamic_pointer_cast<DetectImpl>(model->head())->num_outputs() == 8);
  const auto& column = reversible::reversible_modules(*model)[0]->column_options();
  CHECK(column.memory_mode() == reversible::MemoryMode::Full);
  CHECK(column.store_every() == 2);
  CHECK(column.recompute_chunks() == 2);
  CHECK(column.keep_columns() == 1);
  CHECK(column.memory_budget_mb() == 300);
}

TEST_CASE("channels-last: on for plain models, off with a backbone row; NCHW's outputs and gradients") {
  CHECK_FALSE(build_model("yolov5-revcol-tiny")->channels_last());
  ModelOverrides on, off;
  on.channels_last = true;
  off.channels_last = false;
  CHECK(build_model("yolov5-revcol-tiny", on)->channels_last());
  for (const std::string name : {"yolov5n", "yolov8n"}) {  // Detect's and DFL's reshapes of NHWC maps
    INFO(name);
    at::manual_seed(4);
    DetectionModel fast = build_model(name);
    at::manual_seed(4);
    DetectionModel plain = build_model(name, off);
    fast->to(at::kDouble);  // in float64 the two layouts' different summation orders vanish from the comparison
    plain->to(at::kDouble);
    REQUIRE(fast->channels_last());
    REQUIRE_FALSE(plain->channels_last());
    int64_t convolutions = 0;
    for (const auto& p : fast->parameters())
      if (p.dim() == 4) convolutions += p.is_contiguous(at::MemoryFormat::ChannelsLast);
    CHECK(convolutions == (name == "yolov5n" ? 60 : 64));  // every convolution (and DFL's projection)
    const at::Tensor x = at::randn({2, 3, 64, 64}, at::kDouble);
    const auto a = fast->forward_raw(x), b = plain->forward_raw(x);
    REQUIRE(a.size() == b.size());
    at::Tensor la = at::zeros({}), lb = at::zeros({});
    for (size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].sizes() == b[i].sizes());
      CHECK(at::allclose(a[i], b[i], 1e-10, 1e-12));
      la = la + a[i].pow(2).mean();
      lb = lb + b[i].pow(2).mean();
    }
    la.backward();
    lb.backward();
    auto pb = plain->named_parameters();
    double worst = 0;
    for (const auto& p : fast->named_parameters()) {
      const at::Tensor ga = p.value().grad(), gb = pb[p.key()].grad();
      REQUIRE(ga.defined() == gb.defined());  // (DFL's fixed projection has none)
      if (!ga.defined()) continue;
      worst = std::max(worst, ((ga - gb).norm() / gb.norm().clamp_min(1e-12)).item<double>());
    }
    CHECK(worst < 1e-10);
  }
  CHECK(parse_channels_last("auto") == std::nullopt);
  CHECK(parse_channels_last("on") == std::optional<bool>(true));
  CHECK(parse_channels_last("off") == std::optional<bool>(false));
  CHECK_THROWS_WITH_AS(parse_channels_last("yes"), "--channels-last must be auto, on or off, got 'yes'", InputError);
}

TEST_CASE("config errors say which row and which field") {
  auto yolo = load_model_config("yolov5n");
  auto error = [](nlohmann::json cfg) {
    try {
      DetectionModel m(cfg, "bad.yaml");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto cfg = yolo;
  cfg.erase("nc");
  CHECK(error(cfg) == "bad.yaml: nc is missing (the number of classes)");
  cfg = yolo;
  cfg["nc"] = 0;
  CHECK(error(cfg) == "bad.yaml: nc must be positive, got 0");
  cfg = yolo;
  cfg["colour"] = 1;
  CHECK(error(cfg).find("bad.yaml: unknown key 'colour'") == 0);
  cfg = yolo;
  cfg["head"][2][0] = nlohmann::json::array({-1, 40});
  CHECK(error(cfg) == "bad.yaml: row 12 (Concat): from 40 is out of range: row positions before this one are 0..11");
  cfg = yolo;
  cfg["head"][0][2] = "Conv3";
  CHECK(error(cfg).find("unknown layer 'Conv3' (layers: Bottleneck") != std::string::npos);
  cfg = yolo;
  cfg["head"][0][3] = nlohmann::json::array({512, 1, 1, 0, 1, 1, true, 9});
  CHECK(error(cfg) == "bad.yaml: row 10 (Conv): expected 1 to 7 arguments, got 8");
  cfg = yolo;
  cfg["backbone"][1][1] = "three";
  CHECK(error(cfg) == "bad.yaml: row 1 (Conv): number must be a positive integer, got \"three\"");
  cfg = yolo;
  cfg["backbone"][2][1] = 99999999999;  // built module by module, it would take minutes and gigabytes
  CHECK(error(cfg) == "bad.yaml: row 2 (C3): number 99999999999 (times depth_multiple 0.33) is above 1000 repeats");
  cfg = yolo;
  cfg["depth_multiple"] = 1e30;
  CHECK(error(cfg) == "bad.yaml: depth_multiple must be a positive number up to 100, got 1e+30");
  cfg = yolo;
  cfg["head"][0] = nlohmann::json::array({-1, 1, "Conv"});
  CHECK(error(cfg).find("bad.yaml: row 10: expected [from, number, module, args]") == 0);
  cfg = seed_config();
  cfg["head"][0] = nlohmann::json::array({-1, 1, "revcol_tiny", nlohmann::json::array()});
  CHECK(error(cfg).find("must be row 0") != std::string::npos);
  CHECK_THROWS_WITH_AS(load_model_config("no-such-model"),
                       doctest::Contains("not a built-in model (built-in: yolov5-revcol-base"), InputError);
}

TEST_CASE("built-in names") {
  CHECK(builtin_model_names() == std::vector<std::string>{"yolov5-revcol-base", "yolov5-revcol-small",
                                                          "yolov5-revcol-tiny", "yolov5m", "yolov5n", "yolov5s",
                                                          "yolov8-revcol-tiny", "yolov8l", "yolov8m", "yolov8n",
                                                          "yolov8s", "yolov8x"});
}

// tests/fixtures/yolov8/yolov8_facts.json: what Ultralytics 8.4 builds from its yolov8.yaml.
TEST_CASE("yolov8n, yolov8s and yolov8m build to Ultralytics' rows, parameter counts and GFLOPs") {
  std::ifstream in(REVKIT_TEST_FIXTURES "/yolov8/yolov8_facts.json");
  const auto facts = nlohmann::json::parse(in)["models"];
  for (const std::string scale : {"n", "s", "m"}) {
    CAPTURE(scale);
    const auto& f = facts["yolov8" + scale + "_nc80"];
    DetectionModel model = build_model("yolov8" + scale);
    CHECK(count_parameters(*model) == f["parameters_sum_numel"].get<int64_t>());
    CHECK(model->strides() == std::vector<double>{8, 16, 32});
    const auto& rows = f["rows"];
    REQUIRE(model->layers().size() == rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      CAPTURE(i);
      CHECK(model->layers()[i].params == rows[i]["params"].get<int64_t>());
      CHECK(model->layers()[i].repeats == rows[i]["repeats"].get<int64_t>());
    }
    // Ultralytics' thop count at 640 (multiply-adds x 2) within 2%.
    model->eval();
    at::NoGradGuard no_grad;
    const double gflops = static_cast<double>(count_flops([&] { model->forward(at::zeros({1, 3, 640, 640})); })) / 1e9;
    MESSAGE("yolov8" << scale << ": " << gflops << " GFLOPs, Ultralytics " << f["gflops_640_info"].get<double>());
    CHECK(std::abs(gflops / f["gflops_640_info"].get<double>() - 1) < 0.02);
  }
  // At 3 classes too (the class branch is max(c, min(nc, 100)) wide).
  ModelOverrides three;
  three.num_classes = 3;
  CHECK(count_parameters(*build_model("yolov8n", three)) ==
        facts["yolov8n_nc3"]["parameters_sum_numel"].get<int64_t>());
  CHECK(count_parameters(*build_model("yolov8s", three)) ==
        facts["yolov8s_nc3"]["parameters_sum_numel"].get<int64_t>());
}

TEST_CASE("yolov8n's parameter names and shapes are Ultralytics' state dict") {
  std::ifstream in(REVKIT_TEST_FIXTURES "/yolov8/yolov8_facts.json");
  const auto facts = nlohmann::json::parse(in)["models"]["yolov8n_nc80"];
  REQUIRE(facts.contains("state_dict"));
  std::map<std::string, std::vector<int64_t>> mine;
  DetectionModel model = build_model("yolov8n");
  for (const auto& p : model->named_parameters()) mine[p.key()] = p.value().sizes().vec();
  for (const auto& b : model->named_buffers()) mine[b.key()] = b.value().sizes().vec();
  int64_t compared = 0;
  for (const auto& entry : facts["state_dict"]) {  // [name, shape, dtype]
    const std::string name = entry[0];
    CAPTURE(name);
    REQUIRE(mine.count(name));
    CHECK(mine[name] == entry[1].get<std::vector<int64_t>>());
    ++compared;
  }
  CHECK(compared + 1 == static_cast<int64_t>(mine.size()));  // and the head's stride buffer, which Ultralytics
                                                             // keeps as a plain attribute
}

TEST_CASE("Ultralytics 8's scales: chosen by the name, a bad one refused") {
  CHECK(load_model_config("yolov8s")["scale"] == "s");
  CHECK(load_model_config("yolov8")["scales"].size() == 5);
  // A scale letter after a config's name selects it (yolov8m.yaml is yolov8.yaml at scale m).
  const auto dir = std::filesystem::temp_directory_path() / ("revkit_scales_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "yolov8.yaml");
    out << load_model_config("yolov8").dump();  // JSON is YAML
  }
  CHECK(load_model_config((dir / "yolov8m.yaml").string())["scale"] == "m");
  CHECK(count_parameters(*build_model((dir / "yolov8m.yaml").string())) == 25902640);
  std::filesystem::remove_all(dir);
  auto cfg = load_model_config("yolov8s");
  cfg["scale"] = "q";
  CHECK_THROWS_WITH_AS(DetectionModel(cfg, "v8.yaml"), "v8.yaml: scale 'q' is not in scales (l, m, n, s, x)",
                       InputError);
  cfg["scale"] = "n";
  cfg["scales"]["n"] = nlohmann::json::array({0.33, 0.25});
  CHECK_THROWS_WITH_AS(DetectionModel(cfg, "v8.yaml"), doctest::Contains("must be [depth, width, max_channels]"),
                       InputError);
  cfg = load_model_config("yolov8s");
  cfg["width_multiple"] = 0.5;
  CHECK_THROWS_WITH_AS(DetectionModel(cfg, "v8.yaml"), doctest::Contains("either scales or depth_multiple"),
                       InputError);
}

TEST_CASE("RevCol-T under the YOLOv8 head: anchor-free maps at strides 8, 16, 32, gradients in every mode") {
  at::manual_seed(0);
  ModelOverrides o;
  o.num_classes = 3;
  DetectionModel model = build_model("yolov8-revcol-tiny", o);
  CHECK(model->strides() == std::vector<double>{8, 16, 32});
  CHECK(model->layers().back().from == std::vector<int64_t>{11, 14, 17});
  CHECK(dynamic_cast<DflDetectImpl*>(model->head().get()) != nullptr);
  CHECK(reversible::reversible_modules(*model).size() == 1);
  for (auto mode : {reversible::MemoryMode::Off, reversible::MemoryMode::Column, reversible::MemoryMode::Full}) {
    INFO(reversible::to_string(mode));
    reversible::set_memory_mode(*model, mode);
    model->zero_grad();
    const auto outs = model->forward(at::randn({2, 3, 64, 64}));
    REQUIRE(outs.size() == 3);
    CHECK(outs[0].sizes() == at::IntArrayRef({2, 64 + 3, 8, 8}));
    CHECK(outs[2].sizes() == at::IntArrayRef({2, 64 + 3, 2, 2}));
    const at::Tensor targets = at::tensor({0.0, 1.0, 0.5, 0.5, 0.4, 0.3, 1.0, 2.0, 0.3, 0.6, 0.2, 0.5}).view({2, 6});
    model->head()->loss(outs, targets, {}).total.backward();
    int64_t missing = 0;
    for (const auto& p : model->named_parameters())
      if (p.value().requires_grad() && !p.value().grad().defined() &&
          p.key().find("subnet0.alpha") == std::string::npos)
        ++missing;
    CHECK(missing == 0);
  }
}

TEST_CASE("image sizes round up to the largest stride, as Ultralytics' check_img_size") {
  DetectionModel model = build_model("yolov5n");
  CHECK(model->checked_image_size(320) == 320);
  CHECK(model->checked_image_size(300) == 320);
  CHECK(model->checked_image_size(1) == 32);
  CHECK_THROWS_WITH_AS(model->checked_image_size(0), "--imgsz must be positive, got 0", InputError);
  CHECK_THROWS_WITH_AS(model->checked_image_size(16385), "--imgsz must be at most 16384, got 16385", InputError);
  CHECK(model->checked_image_size(kMaxImageSize) == kMaxImageSize);
}

TEST_CASE("a training batch needs two images where BatchNorm meets 1x1 maps, and one elsewhere") {
  DetectionModel model = build_model("yolov5n");
  CHECK(min_training_batch(*model, 32, model->size_divisor()) == 2);
  CHECK(min_training_batch(*model, 64, model->size_divisor()) == 1);
  // What the rule stands for: one image at 32x32 is LibTorch's error, two are not.
  model->train();
  CHECK_THROWS_WITH(model->forward(at::zeros({1, 3, 32, 32})),
                    doctest::Contains("Expected more than 1 value per channel when training"));
  CHECK(model->forward(at::zeros({2, 3, 32, 32})).size() == 3);
  // The seed's model: BatchNorm in its neck and head, none in RevCol; the backbone alone needs one image.
  DetectionModel seed = build_model("yolov5-revcol-tiny");
  CHECK(min_training_batch(*seed, 32, seed->size_divisor()) == 2);
  CHECK(min_training_batch(*make_backbone("revcol_tiny", BackboneSettings{}), 32, 32) == 1);
}

namespace {
// The seed's model (nc 3) at 64x64: a training step's parameter gradients, under CPU bf16 autocast or not, with
// fixed probes for the loss.
std::map<std::string, at::Tensor> seed_model_gradients(DetectionModel& model, const at::Tensor& x, bool bf16) {
  model->zero_grad();
  std::vector<at::Tensor> raw;
  {
    AutocastState state = AutocastState::current();
    state.cpu_enabled = bf16;
    state.cpu_dtype = at::kBFloat16;
    AutocastStateGuard autocast(state);
    raw = model->forward(x);
  }
  at::Tensor loss = at::zeros({});
  at::manual_seed(99);
  for (const auto& r : raw) loss = loss + (r.to(at::kFloat) * at::randn(r.sizes())).sum();
  loss.backward();
  std::map<std::string, at::Tensor> grads;
  for (const auto& p : model->named_parameters())
    if (p.value().grad().defined()) grads[p.key()] = p.value().grad().clone();
  return grads;
}

// Every parameter that has a gradient in float32 must have one under autocast, in two steps with the weights
// changed between them: a missing gradient (casts cut off from the weights) or a stale one (the first step's
// casts reused) fails. bf16 keeps about 3 significant digits, and its errors grow through 40 layers, so the
// gradients are compared loosely, and a stale gradient is told apart by being nearer the old weights' than the
// new ones'. alpha starts at 1: full mode's inverse divides by alpha, and at the seed's 0.5 it multiplies bf16's
// rounding by 8 over the three inverses of RevCol-T (the drift monitor reports it; auto mode stores columns).
void check_autocast_first(reversible::MemoryMode mode) {
  at::manual_seed(0);
  ModelOverrides o;
  o.num_classes = 3;
  o.backbone.memory_mode = mode;
  o.backbone.drop_path = 0.0;
  o.backbone.alpha_init = 1.0;
  DetectionModel model = build_model("yolov5-revcol-tiny", o);
  model->train();
  const at::Tensor x = at::rand({2, 3, 64, 64});
  std::vector<std::map<std::string, at::Tensor>> amp, fp32;
  for (int step = 0; step < 2; ++step) {
    amp.push_back(seed_model_gradients(model, x, /*bf16=*/true));  // autocast first: nothing ran before it
    fp32.push_back(seed_model_gradients(model, x, /*bf16=*/false));
    at::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())  // an optimizer step that matters: every weight matrix flips sign
      if (p.value().dim() >= 2) p.value().neg_();
  }
  INFO("memory mode ", reversible::to_string(mode));
  for (int step = 0; step < 2; ++step) {
    double scale = 0;
    for (const auto& [name, g] : fp32[step]) scale = std::max(scale, g.norm().item<double>());
    int compared = 0, changed = 0;
    for (const auto& [name, g] : fp32[step]) {
      INFO("step ", step, ", ", name);
      REQUIRE(amp[step].count(name) == 1);
      if (g.norm().item<double>() < 1e-3 * scale) continue;  // all but zero (a bias before BatchNorm)
      const double error = reversible::relative_difference(amp[step][name], g);
      CHECK(error < 0.5);
      ++compared;
      if (step == 1 && reversible::relative_difference(g, fp32[0][name]) > 1.0) {
        ++changed;
        CHECK(error < reversible::relative_difference(amp[step][name], fp32[0][name]));  // not the old weights'
      }
    }
    CHECK(compared > 100);
    if (step == 1) CHECK(changed > 20);
  }
}
}  // namespace

// Each in its own process (tests/CMakeLists.txt runs them with --no-skip), so that autocast's cache starts empty:
// run after another mode in one process, a broken cache can pass.
TEST_CASE("first in a fresh process: the seed's model trains under CPU bf16 autocast in memory mode off" *
          doctest::skip()) {
  check_autocast_first(reversible::MemoryMode::Off);
}
TEST_CASE("first in a fresh process: the seed's model trains under CPU bf16 autocast in memory mode column" *
          doctest::skip()) {
  check_autocast_first(reversible::MemoryMode::Column);
}
TEST_CASE("first in a fresh process: the seed's model trains under CPU bf16 autocast in memory mode full" *
          doctest::skip()) {
  check_autocast_first(reversible::MemoryMode::Full);
}
TEST_CASE("first in a fresh process: the seed's model trains under CPU bf16 autocast in memory mode auto" *
          doctest::skip()) {
  check_autocast_first(reversible::MemoryMode::Auto);
}
