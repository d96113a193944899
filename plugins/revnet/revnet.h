#pragma once
// RevNet: a backbone of reversible residual stages with additive coupling (Gomez et al., 2017), written on
// revkit's general column grid as L = 2 levels with alpha = 1. In each stage, after a strided downsampling,
// the first column projects the input into two streams, then every block is one coupling column:
//
//     c_0[j] = c_0[j-1] + F_j(c_1[j-1])          c_1[j] = c_1[j-1] + G_j(c_0[j])
//
// which the inverse undoes exactly (up to rounding): c_1[j-1] = c_1[j] - G_j(c_0[j]), c_0[j-1] = c_0[j] -
// F_j(c_1[j-1]). A stage's output is c_0 + c_1. Four stages give feature maps at strides 4, 8, 16, 32.
// Shipped as a plugin (librevkit_revnet.so) and as a static library (revnet_plugin()).
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include "backbones/plugin_api.h"
#include "reversible/reversible_module.h"

namespace revkit {

struct RevNetOptions {
  RevNetOptions(std::vector<int64_t> channels, std::vector<int64_t> blocks)
      : channels_(std::move(channels)), blocks_(std::move(blocks)) {}
  TORCH_ARG(std::vector<int64_t>, channels);  // per stage
  TORCH_ARG(std::vector<int64_t>, blocks);    // coupling blocks per stage
  TORCH_ARG(reversible::ColumnOptions, column_options) = reversible::MemoryMode::Column;
};

// conv3x3 - BN - ReLU - conv3x3 - BN: the F and G of a coupling.
class ResidualFunctionImpl : public torch::nn::Module {
 public:
  explicit ResidualFunctionImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
};
TORCH_MODULE(ResidualFunction);

// One cell: in the first column a projection of the stage input (level 0) or of c_0 (level 1); later, F of
// the upper input (level 0) or G of the lower input (level 1).
class RevNetCell : public reversible::ReversibleLevel {
 public:
  RevNetCell(int64_t channels, int64_t level, bool first_column);
  at::Tensor forward(const at::Tensor& lower, const at::Tensor& upper) override;
  ResidualFunction fn{nullptr};
  int64_t level;
  bool first_column;
};

class RevNetStageImpl : public torch::nn::Module, public reversible::ReversibleModule {
 public:
  RevNetStageImpl(int64_t in_channels, int64_t channels, int64_t blocks, int64_t stride,
                  const reversible::ColumnOptions& options);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor column_input(const at::Tensor& x) override { return down->forward(x); }
  torch::nn::Sequential down{nullptr};

 private:
  static std::string fmt_name(int64_t column, int64_t level);
};
TORCH_MODULE(RevNetStage);

class RevNetImpl : public Backbone {
 public:
  explicit RevNetImpl(const RevNetOptions& options);
  std::vector<at::Tensor> forward(const at::Tensor& x) override;
  std::vector<int64_t> out_channels() const override { return options.channels(); }
  std::vector<int64_t> strides() const override { return {4, 8, 16, 32}; }
  RevNetOptions options;
  std::vector<RevNetStage> stages;
};
TORCH_MODULE(RevNet);

// "tiny": channels 32-256, blocks 2 2 4 2; "small": channels 64-512, blocks 2 2 6 2.
RevNetOptions revnet_variant(const std::string& name);

// The plugin's entry for a static link: register_plugin(revnet_plugin(), "revnet").
const RevkitPlugin& revnet_plugin();

}  // namespace revkit
