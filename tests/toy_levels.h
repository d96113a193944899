#pragma once
// A small reversible column stack for tests: L levels at one resolution, each F = tanh(conv3x3(lower)) plus a
// 1x1 conv of the upper input, with optional BatchNorm and dropout (which draws from the RNG). L = 2 with
// alpha = 1 is RevNet's additive coupling.
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include <vector>

#include "reversible/reversible_module.h"

namespace revkit::testing {

struct ToyOptions {
  int64_t channels = 3, levels = 2, columns = 2;
  double alpha = 1.0, dropout = 0.0;
  bool batchnorm = false;
};

class ToyLevel : public reversible::ReversibleLevel {
 public:
  ToyLevel(const ToyOptions& o, bool has_upper);
  at::Tensor forward(const at::Tensor& lower, const at::Tensor& upper) override;
  torch::nn::Conv2d conv{nullptr}, up{nullptr};
  torch::nn::BatchNorm2d norm{nullptr};
  double dropout;
  // dtype of the conv output seen by calls made with grad mode on (the recompute in backward, or Off mode).
  std::vector<c10::ScalarType> seen_with_grad;
  int64_t calls = 0;  // every forward: the sweep's, a recompute's, the drift monitor's
};

class ToyStackImpl : public torch::nn::Module, public reversible::ReversibleModule {
 public:
  explicit ToyStackImpl(const ToyOptions& o, reversible::MemoryMode mode = reversible::MemoryMode::Column);
  std::vector<at::Tensor> forward(const at::Tensor& x) { return run_columns(x); }
  at::Tensor column_input(const at::Tensor& x) override { return x; }
  std::vector<std::shared_ptr<ToyLevel>> all_levels;
};
TORCH_MODULE(ToyStack);

}  // namespace revkit::testing
