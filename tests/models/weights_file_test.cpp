#include "models/weights_file.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "core/safetensors.h"

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
  int64_t total = 0;
  const int64_t copied = transfer_weights(*target, named_state(*source), "w", &total);
  CHECK(total == static_cast<int64_t>(named_state(*target).size()));
  CHECK(copied == total - 6);  // the weights and biases of the three Detect convolutions differ in shape
  CHECK_THROWS_WITH_AS(transfer_weights(*target, {{"x", at::zeros({1})}}, "w.safetensors"),
                       doctest::Contains("w.safetensors: no tensor matches"), InputError);
}
