#pragma once
// The training state of a run, beside each of its weights files ("weights/last.safetensors" ->
// "weights/last.state.safetensors"): everything --resume needs to continue exactly where the run stopped — the
// model and its EMA, the optimizer's momentum and any gradients not yet applied, the RNG streams, the loss scale
// and the counters, with the run's options. Safetensors, written atomically.
#include <ATen/core/Tensor.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace revkit {

struct TrainingState {
  // "model.<name>", "ema.<name>", "sgd.<group>.<index>", "grad.<name>" (gradients not yet applied), "rng.<device>".
  std::map<std::string, at::Tensor> tensors;
  int64_t next_epoch = 0;
  int64_t ema_updates = 0;
  int64_t last_opt_step = -1;  // the last optimizer step, counted from the first iteration of next_epoch
  double best_fitness = 0;
  double loss_scale = 65536.0;
  int64_t loss_scale_good_steps = 0;
  nlohmann::json options;  // TrainOptions::to_json()
};

void write_training_state(const std::string& path, const TrainingState& state);
// Throws InputError naming the file when it is not a revkit training state or a field cannot be read.
TrainingState read_training_state(const std::string& path);

// "<dir>/last.safetensors" -> "<dir>/last.state.safetensors".
std::string state_path_for(const std::string& weights_path);
// The state file that `--resume ARG` means: ARG itself if it is a state file, the state beside a weights file, a
// run folder's weights/last.state.safetensors, or (ARG empty) the most recently written one under `project`.
// Throws InputError when there is none.
std::string find_training_state(const std::string& run_or_state, const std::string& project);

// The tensors whose names start with `prefix`, with the prefix taken off; and the reverse.
std::map<std::string, at::Tensor> strip_prefix(const std::map<std::string, at::Tensor>& tensors,
                                               const std::string& prefix);
std::map<std::string, at::Tensor> with_prefix(const std::map<std::string, at::Tensor>& tensors,
                                              const std::string& prefix);

}  // namespace revkit
