#include "engine/checkpoint.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/safetensors.h"

namespace fs = std::filesystem;
using namespace revkit;

TEST_CASE("training state: every counter, the options and the tensors round-trip") {
  const fs::path dir = fs::temp_directory_path() / ("revkit_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir / "weights");
  TrainingState s;
  s.tensors = {{"model.w", at::arange(6, at::kFloat).view({2, 3})}, {"sgd.0.0", at::ones({3})}};
  s.next_epoch = 7;
  s.ema_updates = 123;
  s.last_opt_step = -2;
  s.best_fitness = 0.123456789012345678;
  s.loss_scale = 32768;
  s.loss_scale_good_steps = 17;
  s.options = {{"epochs", 10}, {"model", "yolov5n"}};
  const std::string path = (dir / "weights" / "last.state.safetensors").string();
  write_training_state(path, s);
  const TrainingState r = read_training_state(path);
  CHECK(r.next_epoch == 7);
  CHECK(r.ema_updates == 123);
  CHECK(r.last_opt_step == -2);
  CHECK(r.best_fitness == s.best_fitness);  // exact: written with 17 digits
  CHECK(r.loss_scale == 32768);
  CHECK(r.loss_scale_good_steps == 17);
  CHECK(r.options == s.options);
  REQUIRE(r.tensors.size() == 2);
  CHECK(at::equal(r.tensors.at("model.w"), s.tensors.at("model.w")));

  // --resume's argument: the state itself, the weights beside it, the run folder, or the newest under a project.
  CHECK(find_training_state(path, "") == path);
  CHECK(find_training_state((dir / "weights" / "last.safetensors").string(), "") == path);
  CHECK(find_training_state(dir.string(), "") == path);
  CHECK(find_training_state("", dir.parent_path().string()).find("last.state.safetensors") != std::string::npos);
  CHECK_THROWS_WITH_AS(find_training_state((dir / "nothing").string(), ""), doctest::Contains("no training state"),
                       InputError);
  const fs::path empty = dir / "empty";
  fs::create_directories(empty);
  CHECK_THROWS_WITH_AS(find_training_state("", empty.string()), doctest::Contains("no run to resume"), InputError);

  // Weights are not a training state.
  write_safetensors((dir / "w.safetensors").string(), s.tensors, {{"format", "revkit-weights"}});
  CHECK_THROWS_WITH_AS(read_training_state((dir / "w.safetensors").string()),
                       doctest::Contains("not a revkit training state"), InputError);
  fs::remove_all(dir);
}

TEST_CASE("training state: a counter out of range or not wholly a number is named with the file") {
  const fs::path dir = fs::temp_directory_path() / ("revkit_ckpt_bad_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "last.state.safetensors").string();
  const std::map<std::string, std::string> good = {{"format", "revkit-train-state"}, {"next_epoch", "3"},
                                                   {"best_fitness", "0.5"},          {"ema_updates", "10"},
                                                   {"last_opt_step", "-2"},          {"args", "{}"}};
  auto read_with = [&](const std::string& key, const std::string& value) {
    auto metadata = good;
    metadata[key] = value;
    write_safetensors(path, {{"model.w", at::zeros({1})}}, metadata);
    return read_training_state(path);
  };
  CHECK(read_with("loss_scale", "1024").loss_scale == 1024);
  CHECK(read_with("last_opt_step", "-7").last_opt_step == -7);
  CHECK_THROWS_WITH_AS(read_with("next_epoch", "-3"),
                       (path + ": the training state's 'next_epoch' is '-3', not a whole number of 0 or more").c_str(),
                       InputError);
  CHECK_THROWS_WITH_AS(read_with("ema_updates", "12abc"),
                       doctest::Contains("'ema_updates' is '12abc', not a whole number of 0 or more"), InputError);
  CHECK_THROWS_WITH_AS(read_with("next_epoch", "99999999999999999999"), doctest::Contains("not a whole number"),
                       InputError);
  CHECK_THROWS_WITH_AS(read_with("last_opt_step", "x"), doctest::Contains("'last_opt_step' is 'x', not a whole number"),
                       InputError);
  CHECK_THROWS_WITH_AS(read_with("best_fitness", "nan"),
                       doctest::Contains("'best_fitness' is 'nan', not a finite number"), InputError);
  CHECK_THROWS_WITH_AS(read_with("loss_scale", "0"),
                       doctest::Contains("'loss_scale' is '0', not a finite positive number"), InputError);
  fs::remove_all(dir);
}

TEST_CASE("state file names and tensor prefixes") {
  CHECK(state_path_for("runs/x/weights/last.safetensors") == "runs/x/weights/last.state.safetensors");
  const std::map<std::string, at::Tensor> t = {{"a", at::zeros({1})}, {"b", at::ones({1})}};
  const auto prefixed = with_prefix(t, "model.");
  CHECK(prefixed.count("model.a") == 1);
  auto mixed = prefixed;
  mixed["ema.a"] = at::zeros({1});
  const auto back = strip_prefix(mixed, "model.");
  CHECK(back.size() == 2);
  CHECK(back.count("a") == 1);
}
