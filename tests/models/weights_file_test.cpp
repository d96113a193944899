#include "models/weights_file.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/weights.h"

namespace fs = std::filesystem;
using namespace revkit;

TEST_CASE("weights round trip: a detector rebuilt from the config saved with its weights") {
  const std::string path =
      (fs::temp_directory_path() / ("revkit_w_" + std::to_string(::getpid()) + ".safetensors")).string();
  at::manual_seed(1);
  ModelOverrides o;
  o.num_classes = 3;
  DetectionModel model = build_model("yolov5n", o);
  std::string source;
  const auto config = load_model_config("yolov5n", &source);
  save_weights(path, *model, {{"config", config.dump()}, {"nc", "3"}, {"names", R"(["a","b","c"])"}});
  std::vector<std::string> names;
  DetectionModel loaded = load_detector("", path, &names);
  CHECK(names == std::vector<std::string>{"a", "b", "c"});
  CHECK(loaded->num_classes() == 3);
  const auto a = named_state(*model), b = named_state(*loaded);
  REQUIRE(a.size() == b.size());
  for (const auto& [k, t] : a) CHECK(at::equal(t, b.at(k)));

  // Without metadata the class count comes from the head's shape, and the config from --model.
  write_safetensors(path, a);
  DetectionModel plain = load_detector("yolov5n", path, &names);
  CHECK(plain->num_classes() == 3);
  CHECK(names == std::vector<std::string>{"0", "1", "2"});
  CHECK_THROWS_WITH_AS(load_detector("", path), doctest::Contains("no model config saved with these weights"),
                       InputError);
  // Another model's weights: every mismatch named.
  CHECK_THROWS_WITH_AS(load_detector("yolov5s", path), doctest::Contains((path + ": ").c_str()), InputError);
  fs::remove(path);
}

TEST_CASE("transfer_weights copies what matches by name and shape") {
  at::manual_seed(2);
  ModelOverrides o;
  o.num_classes = 3;
  DetectionModel source = build_model("yolov5n", o);
  o.num_classes = 5;
  DetectionModel target = build_model("yolov5n", o);
  WeightsFile file;
  file.tensors = named_state(*source);
  const WeightsMatch m = transfer_weights(*target, file, "w");
  CHECK(m.matched.size() == named_state(*target).size() - 6);
  CHECK(m.mismatched.size() == 6);  // the weights and biases of the three Detect convolutions differ in shape
  CHECK(at::equal(target->named_parameters()["model.0.conv.weight"], file.tensors.at("model.0.conv.weight")));
  // The model is channels-last, its file standard layout: the copy keeps the model's layout, the state written
  // out is contiguous again.
  REQUIRE(target->channels_last());
  CHECK(target->named_parameters()["model.0.conv.weight"].is_contiguous(at::MemoryFormat::ChannelsLast));
  CHECK_FALSE(target->named_parameters()["model.0.conv.weight"].is_contiguous());
  CHECK(file.tensors.at("model.0.conv.weight").is_contiguous());
  for (const auto& [name, t] : named_state(*target)) CHECK(t.is_contiguous());
  WeightsFile unrelated;
  unrelated.tensors = {{"x", at::zeros({1})}};
  CHECK_THROWS_WITH_AS(transfer_weights(*target, unrelated, "w.safetensors"),
                       doctest::Contains("w.safetensors: no tensor matches"), InputError);
}

// An ImageNet backbone checkpoint has the backbone's own names (no "model.0." row prefix) and classification keys.
TEST_CASE("a backbone's own checkpoint goes into the backbone row of a detector, the rest reported") {
  ModelOverrides o;
  o.num_classes = 2;
  o.backbone.columns = 1;
  at::manual_seed(3);
  DetectionModel pretrained = build_model("yolov5-revcol-tiny", o);
  WeightsFile file;
  for (const auto& [name, t] : named_state(*pretrained))
    if (name.rfind("model.0.", 0) == 0) file.tensors[name.substr(8)] = t;
  const size_t backbone_tensors = file.tensors.size();
  file.tensors["head.fc.weight"] = at::ones({1000, 512});  // RevCol's classifier
  at::manual_seed(4);
  DetectionModel detector = build_model("yolov5-revcol-tiny", o);
  const WeightsMatch m = transfer_weights(*detector, file, "revcol_tiny_1k.pth");
  CHECK(m.matched.size() == backbone_tensors);
  CHECK(m.unexpected == std::vector<std::string>{"model.0.head.fc.weight"});
  CHECK(at::equal(detector->named_parameters()["model.0.stem.0.weight"], file.tensors.at("stem.0.weight")));
  CHECK(!at::equal(detector->named_parameters()["model.1.cv1.conv.weight"],
                   pretrained->named_parameters()["model.1.cv1.conv.weight"]));  // the neck keeps its own init
}

TEST_CASE("weights without a class count: read from the head's shape, and a shape that is no head refused") {
  const std::string path =
      (fs::temp_directory_path() / ("revkit_nc_" + std::to_string(::getpid()) + ".safetensors")).string();
  ModelOverrides o;
  o.num_classes = 3;
  DetectionModel model = build_model("yolov5n", o);
  auto tensors = named_state(*model);
  write_safetensors(path, tensors);  // no metadata at all, as a state dict from elsewhere
  CHECK(load_detector("yolov5n", path)->num_classes() == 3);
  tensors["model.24.m.0.weight"] = at::zeros({7, 64, 1, 1});
  write_safetensors(path, tensors);
  CHECK_THROWS_WITH_AS(load_detector("yolov5n", path),
                       doctest::Contains(": the shapes of the model.24.* head tensors fit no class count of the "
                                         "model's head: weights of another head?"),
                       InputError);
  fs::remove(path);
  CHECK_THROWS_WITH_AS(read_weights_file(std::string(REVKIT_TEST_FIXTURES) + "/pytorch/legacy.pt"),
                       doctest::Contains("legacy.pt: a pickle, not a zip archive: the legacy torch.save format"),
                       InputError);
}

TEST_CASE("weights holding a NaN or an infinity are refused where they are read, naming the tensor") {
  const std::string path =
      (fs::temp_directory_path() / ("revkit_nonfinite_" + std::to_string(::getpid()) + ".safetensors")).string();
  DetectionModel model = build_model("yolov5n");
  auto tensors = named_state(*model);
  write_safetensors(path, tensors);
  CHECK(read_weights_file(path).tensors.size() == tensors.size());
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    auto spoilt = tensors;
    spoilt["model.0.bn.bias"] = spoilt["model.0.bn.bias"].clone();
    spoilt["model.0.bn.bias"][3] = bad;
    write_safetensors(path, spoilt);
    CHECK_THROWS_WITH_AS(read_weights_file(path),
                         (path + ": tensor 'model.0.bn.bias' holds NaN or infinite values").c_str(), InputError);
    CHECK_THROWS_WITH_AS(load_detector("yolov5n", path), doctest::Contains("holds NaN or infinite values"), InputError);
  }
  fs::remove(path);
}

TEST_CASE("a .pt or .pth file that is no checkpoint is named as such; a safetensors file so named still loads") {
  const fs::path dir = fs::temp_directory_path() / ("revkit_not_pt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const char* name : {"notes.pt", "notes.pth"}) {
    std::ofstream(dir / name) << "these are not weights\n";
    CHECK_THROWS_WITH_AS(read_weights_file((dir / name).string()),
                         ((dir / name).string() + ": not a PyTorch checkpoint: torch.save writes a zip archive (or a "
                                                  "pickle before PyTorch 1.6), and this file is neither")
                             .c_str(),
                         InputError);
  }
  std::ofstream(dir / "notes.safetensors") << "these are not weights\n";
  CHECK_THROWS_WITH_AS(read_weights_file((dir / "notes.safetensors").string()), doctest::Contains("header"),
                       InputError);
  write_safetensors((dir / "renamed.pt").string(), {{"w", at::ones({2})}});
  CHECK(read_weights_file((dir / "renamed.pt").string()).tensors.size() == 1);
  fs::remove_all(dir);
}

TEST_CASE("class names from metadata: a list, or Ultralytics 8's {index: name} object") {
  CHECK(names_from_metadata({{"names", R"(["a","b"])"}}) == std::vector<std::string>{"a", "b"});
  CHECK(names_from_metadata({{"names", R"({"1":"b","0":"a"})"}}) == std::vector<std::string>{"a", "b"});
  CHECK(names_from_metadata({{"names", R"({"0":"a","2":"c"})"}}).empty());  // a gap: not trusted
  CHECK(names_from_metadata({{"names", "not json"}}).empty());
  CHECK(names_from_metadata({}).empty());
}

// Ultralytics' checkpoints (tests/fixtures/ultralytics) pickle the whole model: its yaml is the config, and the
// strides it keeps outside the state dict are derived.
TEST_CASE("an Ultralytics YOLOv5 checkpoint loads as it is, converts, and computes Ultralytics' outputs") {
  const std::string fixtures = std::string(REVKIT_TEST_FIXTURES) + "/ultralytics/";
  const Safetensors forward = read_safetensors(fixtures + "yolov5n_coco128_forward.safetensors");
  std::vector<std::string> names;
  DetectionModel model = load_detector("", fixtures + "yolov5n_coco128.pt", &names);
  REQUIRE(names.size() == 80);
  CHECK(names[0] == "person");
  CHECK(at::equal(model->head()->stride, at::tensor({8.0f, 16.0f, 32.0f})));
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor out = model->forward(forward.tensors.at("input"))[0];
  CHECK(out.sizes() == forward.tensors.at("output").sizes());
  CHECK((out - forward.tensors.at("output")).abs().max().item<double>() < 1e-3);

  const std::string converted =
      (fs::temp_directory_path() / ("revkit_c_" + std::to_string(::getpid()) + ".safetensors")).string();
  const WeightsFile file = convert_weights(fixtures + "yolov5n_coco128.pt", converted);
  CHECK(file.layout.find("DetectionModel") != std::string::npos);
  const Safetensors written = read_safetensors(converted);
  CHECK(written.metadata.at("nc") == "80");
  CHECK(written.metadata.at("format") == "revkit-weights");
  CHECK(written.tensors.size() == file.tensors.size());
  DetectionModel again = load_detector("", converted);
  again->eval();
  CHECK(at::equal(again->forward(forward.tensors.at("input"))[0], out));
  fs::remove(converted);

  CHECK_THROWS_WITH_AS(read_weights_file(fixtures + "none.pt"), doctest::Contains("none.pt: cannot open file"),
                       InputError);
}

// tests/fixtures/yolov8: the trainer's best.pt of Ultralytics 8.4 (a pickled ultralytics.nn.tasks.DetectionModel,
// fp16) and its fp32 eval-mode outputs on a fixed input.
TEST_CASE("an Ultralytics 8 checkpoint loads with its config and names, and runs as Ultralytics runs it") {
  std::vector<std::string> names;
  DetectionModel model = load_detector("", REVKIT_TEST_FIXTURES "/yolov8/yolov8n_coco128.pt", &names);
  CHECK(model->num_classes() == 80);
  REQUIRE(names.size() == 80);
  CHECK(names[0] == "person");
  CHECK(names[79] == "toothbrush");
  CHECK(count_parameters(*model) == 3157200);
  const Safetensors f = read_safetensors(REVKIT_TEST_FIXTURES "/yolov8/yolov8n_coco128_forward.safetensors");
  model->eval();
  at::NoGradGuard no_grad;
  const at::Tensor input = f.tensors.at("input");
  const at::Tensor out = model->forward(input)[0];  // [1, anchors, 84]; Ultralytics' is [1, 84, anchors]
  const at::Tensor want = f.tensors.at("output").transpose(1, 2);
  REQUIRE(out.sizes() == want.sizes());
  CHECK((out - want).abs().max().item<double>() < 1e-3);  // pixels (up to 256) and scores
  const auto raw = model->forward_raw(input);
  for (int i = 0; i < 3; ++i) {
    const at::Tensor r = f.tensors.at("raw" + std::to_string(i));
    REQUIRE(raw[i].sizes() == r.sizes());
    CHECK((raw[i] - r).abs().max().item<double>() < 1e-3);
  }
}
