#include "engine/optimizer.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "core/error.h"

namespace revkit {
namespace {

void collect(const torch::nn::Module& module, ParameterGroups& groups) {
  const bool is_norm = module.name().find("Norm") != std::string::npos;
  for (const auto& p : module.named_parameters(/*recurse=*/false)) {
    if (!p.value().requires_grad()) continue;
    if (p.key() == "bias")
      groups.biases.push_back(p.value());
    else if (p.key() == "weight" && is_norm)
      groups.norm_weights.push_back(p.value());
    else
      groups.weights.push_back(p.value());
  }
  for (const auto& child : module.children()) collect(*child, groups);
}

double interpolate(double x, double x1, double y0, double y1) { return x >= x1 ? y1 : y0 + (y1 - y0) * x / x1; }

}  // namespace

ParameterGroups group_parameters(const torch::nn::Module& model) {
  ParameterGroups groups;
  collect(model, groups);
  return groups;
}

NesterovSgd::NesterovSgd(const ParameterGroups& g, double lr, double momentum, double weight_decay) {
  for (const auto* params : {&g.biases, &g.weights, &g.norm_weights}) {
    SgdGroup group;
    group.params = *params;
    group.lr = group.initial_lr = lr;
    group.momentum = momentum;
    group.weight_decay = params == &g.weights ? weight_decay : 0.0;
    group.momentum_buffers.resize(params->size());
    groups_.push_back(std::move(group));
  }
}

at::Tensor restore_like(const at::Tensor& saved, const at::Tensor& parameter) {
  return at::empty_like(parameter, at::MemoryFormat::Preserve).copy_(saved);
}

void NesterovSgd::step() {
  at::NoGradGuard no_grad;
  for (auto& g : groups_) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      at::Tensor& p = g.params[i];
      if (!p.grad().defined()) continue;
      at::Tensor d = p.grad();
      if (g.weight_decay != 0) d = d.add(p, g.weight_decay);
      at::Tensor& buf = g.momentum_buffers[i];
      if (!buf.defined())
        buf = d.clone();
      else
        buf.mul_(g.momentum).add_(d);
      p.add_(d.add(buf, g.momentum), -g.lr);
    }
  }
}

void NesterovSgd::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params)
      if (p.grad().defined()) p.mutable_grad() = at::Tensor();
}

std::map<std::string, at::Tensor> NesterovSgd::state() const {
  std::map<std::string, at::Tensor> out;
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].momentum_buffers.size(); ++i)
      if (groups_[g].momentum_buffers[i].defined())
        out[fmt::format("sgd.{}.{}", g, i)] = groups_[g].momentum_buffers[i];
  return out;
}

void NesterovSgd::load_state(const std::map<std::string, at::Tensor>& tensors, const std::string& source) {
  for (size_t g = 0; g < groups_.size(); ++g)
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const auto it = tensors.find(fmt::format("sgd.{}.{}", g, i));
      if (it == tensors.end()) continue;  // no step taken for it yet
      const at::Tensor& p = groups_[g].params[i];
      if (it->second.sizes() != p.sizes())
        throw InputError(source,
                         fmt::format("optimizer state '{}' has shape [{}], the model's parameter [{}]", it->first,
                                     fmt::join(it->second.sizes(), ", "), fmt::join(p.sizes(), ", ")));
      groups_[g].momentum_buffers[i] = restore_like(it->second, p);
    }
}

TrainingSchedule::TrainingSchedule(const ScheduleOptions& options, int64_t epochs, int64_t batches_per_epoch,
                                   int64_t batch_size)
    : options_(options), epochs_(epochs), batch_size_(batch_size) {
  warmup_iterations_ =
      options.warmup_epochs <= 0
          ? 0
          : std::max<int64_t>(static_cast<int64_t>(std::nearbyint(options.warmup_epochs * batches_per_epoch)),
                              options.min_warmup_iterations);
  accumulate_ = std::max<int64_t>(
      static_cast<int64_t>(std::nearbyint(static_cast<double>(options.nominal_batch) / batch_size)), 1);
  warmup_end_epoch_ = warmup_iterations_ / std::max<int64_t>(1, batches_per_epoch);
}

double TrainingSchedule::scaled_weight_decay() const {
  return options_.weight_decay * static_cast<double>(batch_size_ * accumulate_) / options_.nominal_batch;
}

double TrainingSchedule::lr_factor(int64_t epoch) const {
  const double x = static_cast<double>(epoch), n = static_cast<double>(epochs_), f = options_.lrf;
  if (options_.cosine) return ((1 - std::cos(x * M_PI / n)) / 2) * (f - 1) + 1;
  return (1 - x / n) * (1.0 - f) + f;
}

void TrainingSchedule::apply(NesterovSgd& optimizer, int64_t ni, int64_t epoch) {
  auto& groups = optimizer.groups();
  const double target = lr_factor(epoch);
  if (ni <= warmup_iterations_ && warmup_iterations_ > 0) {
    const double x = static_cast<double>(ni), x1 = static_cast<double>(warmup_iterations_);
    const double nominal = static_cast<double>(options_.nominal_batch) / batch_size_;
    accumulate_ = std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(interpolate(x, x1, 1.0, nominal))));
    for (size_t j = 0; j < groups.size(); ++j) {
      groups[j].lr = interpolate(x, x1, j == 0 ? options_.warmup_bias_lr : 0.0, groups[j].initial_lr * target);
      groups[j].momentum = interpolate(x, x1, options_.warmup_momentum, options_.momentum);
    }
  } else {
    accumulate_ = std::max<int64_t>(
        static_cast<int64_t>(std::nearbyint(static_cast<double>(options_.nominal_batch) / batch_size_)), 1);
    // train.py's LambdaLR steps after each epoch from last_epoch = -1, so once warm-up has ended an epoch runs at
    // the factor of the epoch before it (the last one at lf(epochs - 2)); the epoch where warm-up ends keeps
    // warm-up's end point, lf(epoch).
    const double scheduled = lr_factor(epoch > warmup_end_epoch_ ? epoch - 1 : epoch);
    for (auto& g : groups) {
      g.lr = g.initial_lr * scheduled;
      g.momentum = options_.momentum;
    }
  }
}

ModelEma::ModelEma(const torch::nn::Module& model, torch::nn::Module& ema, int64_t updates) : updates_(updates) {
  const auto params = ema.parameters(), buffers = ema.buffers();
  const auto source = model_values(model);
  std::vector<at::Tensor> all(params.begin(), params.end());
  all.insert(all.end(), buffers.begin(), buffers.end());
  TORCH_CHECK(all.size() == source.size(), "ModelEma: the EMA model has a different architecture");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < all.size(); ++i) {
    all[i].requires_grad_(false);
    all[i].copy_(source[i]);
    ema_values_.push_back(all[i]);
  }
  ema.eval();
}

std::vector<at::Tensor> ModelEma::model_values(const torch::nn::Module& model) const {
  const auto params = model.parameters(), buffers = model.buffers();
  std::vector<at::Tensor> all(params.begin(), params.end());
  all.insert(all.end(), buffers.begin(), buffers.end());
  return all;
}

double ModelEma::decay() const { return 0.9999 * (1 - std::exp(-static_cast<double>(updates_) / 2000.0)); }

void ModelEma::update(const torch::nn::Module& model) {
  ++updates_;
  const double d = decay();
  const auto source = model_values(model);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < source.size(); ++i) {
    at::Tensor& e = ema_values_[i];
    if (at::isFloatingType(e.scalar_type()))
      e.mul_(d).add_(source[i].detach(), 1 - d);
    else
      e.copy_(source[i]);
  }
}

}  // namespace revkit
