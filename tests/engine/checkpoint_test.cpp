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
