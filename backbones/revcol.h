#pragma once
// RevCol, Reversible Column Networks (Cai et al., ICLR 2023): a stem, then N columns of four levels of
// ConvNeXt blocks joined by Fusion (down from the finer level of this column, up from the coarser level of the
// previous column), each level kept reversibly as c_k = alpha_k * c_k + F_k(...). Parameter names equal the
// seed's state_dict keys (stem.0.weight, subnet1.alpha0, subnet1.level0.fusion.up.channel_reschedule.0.weight).
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "backbones/backbone.h"
#include "reversible/reversible_module.h"

namespace revkit {

// LayerNorm over the channels of an NCHW tensor (the seed's LayerNorm with data_format="channels_first").
class LayerNorm2dImpl : public torch::nn::Module {
 public:
  explicit LayerNorm2dImpl(int64_t channels, double eps = 1e-6);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm2d);

// ConvNeXt block: depthwise conv, LayerNorm, Linear x4, GELU, Linear, layer scale, drop path, residual.
class ConvNextBlockImpl : public torch::nn::Module {
 public:
  ConvNextBlockImpl(int64_t channels, int64_t kernel_size, double layer_scale_init, double drop_path);
  at::Tensor forward(const at::Tensor& x);
  at::Tensor gamma;
  torch::nn::Conv2d dwconv{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear pwconv1{nullptr}, pwconv2{nullptr};
  double drop_path;
};
TORCH_MODULE(ConvNextBlock);

// Linear channel change + LayerNorm, then nearest upsampling by 2^ratio.
class UpSampleConvnextImpl : public torch::nn::Module {
 public:
  UpSampleConvnextImpl(int64_t ratio, int64_t in_channels, int64_t out_channels);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Sequential channel_reschedule{nullptr};
  int64_t scale;
};
TORCH_MODULE(UpSampleConvnext);

class FusionImpl : public torch::nn::Module {
 public:
  FusionImpl(int64_t level, const std::vector<int64_t>& channels, bool first_column);
  at::Tensor forward(const at::Tensor& down_input, const at::Tensor& up_input);
  torch::nn::Sequential down{nullptr};  // absent at level 0
  UpSampleConvnext up{nullptr};         // absent in the first column and at the top level
  int64_t level;
  bool first_column;
};
TORCH_MODULE(Fusion);

class RevColLevel : public reversible::ReversibleLevel {
 public:
  RevColLevel(int64_t level, const std::vector<int64_t>& channels, const std::vector<int64_t>& layers,
              int64_t kernel_size, bool first_column, const std::vector<double>& drop_path_rates,
              double layer_scale_init);
  at::Tensor forward(const at::Tensor& lower, const at::Tensor& upper) override;
  Fusion fusion{nullptr};
  torch::nn::Sequential blocks{nullptr};
};

struct RevColOptions {
  RevColOptions(std::vector<int64_t> channels, std::vector<int64_t> layers, int64_t columns)
      : channels_(std::move(channels)), layers_(std::move(layers)), columns_(columns) {}
  TORCH_ARG(std::vector<int64_t>, channels);  // four levels
  TORCH_ARG(std::vector<int64_t>, layers);    // ConvNeXt blocks per level
  TORCH_ARG(int64_t, columns);
  TORCH_ARG(int64_t, kernel_size) = 3;
  TORCH_ARG(double, drop_path) = 0.0;  // largest rate; block rates rise linearly from 0 over the levels' blocks
  TORCH_ARG(double, alpha_init) = 0.5;
  TORCH_ARG(double, layer_scale_init) = 1e-6;
  TORCH_ARG(int64_t, in_channels) = 3;
  TORCH_ARG(reversible::ColumnOptions, column_options) = reversible::MemoryMode::Column;
};

// The seed's variants: "tiny", "small", "base", "large", "xlarge" (channels, layers, columns, drop path).
RevColOptions revcol_variant(const std::string& name);
std::vector<std::string> revcol_variant_names();

class RevColImpl : public Backbone, public reversible::ReversibleModule {
 public:
  explicit RevColImpl(RevColOptions options);
  // Four feature maps at strides 4, 8, 16, 32. Input sides must be multiples of 32.
  std::vector<at::Tensor> forward(const at::Tensor& x) override;
  std::vector<int64_t> out_channels() const override { return options.channels(); }
  std::vector<int64_t> strides() const override { return {4, 8, 16, 32}; }
  at::Tensor column_input(const at::Tensor& x) override;
  // The seed's initialisation: truncated normal (std 0.02) Conv2d and Linear weights, zero biases.
  void reset_parameters();

  RevColOptions options;
  torch::nn::Sequential stem{nullptr};
};
TORCH_MODULE(RevCol);

}  // namespace revkit
