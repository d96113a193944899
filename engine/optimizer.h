#pragma once
// YOLOv5's optimisation recipe (hyp.scratch-low): SGD with Nesterov momentum over three parameter groups
// (0: biases, 1: weights with decay, 2: norm weights), a warm-up of learning rate, momentum and accumulation,
// a linear or cosine decay per epoch, and an exponential moving average of the weights.
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

namespace revkit {

struct ParameterGroups {
  std::vector<at::Tensor> biases, weights, norm_weights;
};

// Ultralytics' rule: a parameter named "bias" is a bias; "weight" of a module whose type name contains "Norm" is
// a norm weight; everything else (convolution and linear weights, RevCol's alphas, layer scales) is decayed.
ParameterGroups group_parameters(const torch::nn::Module& model);

// A copy of saved (a checkpoint's contiguous tensor) in the memory layout, dtype and device of parameter: state
// restored for a channels-last weight must be channels-last too, or the elementwise updates take the strided path,
// whose rounding differs from the dense one on some CPUs and breaks bitwise resume.
at::Tensor restore_like(const at::Tensor& saved, const at::Tensor& parameter);

struct SgdGroup {
  std::vector<at::Tensor> params;
  double lr = 0.01, initial_lr = 0.01, momentum = 0.937, weight_decay = 0;
  std::vector<at::Tensor> momentum_buffers;  // undefined until the first step, as torch.optim.SGD
};

// torch.optim.SGD(nesterov=True, dampening=0) over the three groups.
class NesterovSgd {
 public:
  NesterovSgd(const ParameterGroups& groups, double lr, double momentum, double weight_decay);
  void step();
  void zero_grad();
  std::vector<SgdGroup>& groups() { return groups_; }
  const std::vector<SgdGroup>& groups() const { return groups_; }
  // Momentum buffers as "sgd.<group>.<index>", for checkpoints.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& tensors, const std::string& source);

 private:
  std::vector<SgdGroup> groups_;
};

struct ScheduleOptions {
  double lr0 = 0.01, lrf = 0.01, momentum = 0.937, weight_decay = 5e-4;
  double warmup_epochs = 3.0, warmup_momentum = 0.8, warmup_bias_lr = 0.1;
  int64_t min_warmup_iterations = 100;
  bool cosine = false;
  int64_t nominal_batch = 64;
};

// Learning rate, momentum and gradient accumulation over a run, as YOLOv5's train.py sets them.
class TrainingSchedule {
 public:
  TrainingSchedule(const ScheduleOptions& options, int64_t epochs, int64_t batches_per_epoch, int64_t batch_size);
  // The multiplier of lr0 in `epoch` after warm-up: linear 1 -> lrf, or cosine.
  double lr_factor(int64_t epoch) const;
  // Sets each group's lr and momentum for iteration `ni` (counted from the start of the run) of `epoch`: during
  // warm-up towards lr0 x lr_factor(epoch), after it lr0 x lr_factor(epoch - 1) as train.py's scheduler lags.
  void apply(NesterovSgd& optimizer, int64_t ni, int64_t epoch);
  // Batches whose gradients are summed before a step: ramps to nominal_batch / batch_size during warm-up
  // (rounded half to even, as numpy does in train.py).
  int64_t accumulate() const { return accumulate_; }
  int64_t warmup_iterations() const { return warmup_iterations_; }
  // Weight decay scaled to the batch actually accumulated, as train.py does.
  double scaled_weight_decay() const;

 private:
  ScheduleOptions options_;
  int64_t epochs_, batch_size_, warmup_iterations_, accumulate_;
  int64_t warmup_end_epoch_ = 0;  // the epoch holding warm-up's last iteration
};

// Exponential moving average of a model's parameters and floating-point buffers, with YOLOv5's ramp:
// decay = 0.9999 (1 - exp(-updates / 2000)).
class ModelEma {
 public:
  // `ema` is a second instance of the model's architecture; it receives the model's current values.
  ModelEma(const torch::nn::Module& model, torch::nn::Module& ema, int64_t updates = 0);
  void update(const torch::nn::Module& model);
  double decay() const;
  int64_t updates() const { return updates_; }

 private:
  std::vector<at::Tensor> model_values(const torch::nn::Module& model) const;
  std::vector<at::Tensor> ema_values_;
  int64_t updates_;
};

}  // namespace revkit
