#include "backbones/revcol.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/init.h>

#include <map>

#include "core/error.h"
#include "core/fused_linear.h"
#include "core/init.h"
#include "reversible/chunks.h"
#include "reversible/kept_matmuls.h"

namespace revkit {
namespace {

// Per-sample stochastic depth as a scale of shape [N, 1, 1, 1]: 0 for a dropped sample (probability p), 1/(1-p)
// for a kept one. The same Bernoulli draws as the seed's drop_path.
at::Tensor drop_path_scale(const at::Tensor& x, double p) {
  const double keep = 1.0 - p;
  at::Tensor mask = at::empty({x.size(0), 1, 1, 1}, x.options()).bernoulli_(keep);
  if (keep > 0.0) mask.div_(keep);
  return mask;
}

// An identity whose backward hands on the gradient in the memory format of its input. The columns run channels
// last (their LayerNorms write NHWC); a gradient that arrives in NCHW order from outside (a loss, a neck) would
// otherwise reach every ConvNeXt block in the other layout and be copied there several times over: at the
// reshape of each pointwise layer's gradient, in each LayerNorm's and convolution's backward, and in every
// mixed-layout accumulation. Converted once here, it flows through the residual chains as it is.
struct GradientInLayout : public torch::autograd::Function<GradientInLayout> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    ctx->saved_data["channels_last"] = x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast);
    return x.view_as(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    if (!ctx->saved_data["channels_last"].toBool() || !grad[0].defined()) return grad;
    return {grad[0].contiguous(at::MemoryFormat::ChannelsLast)};
  }
};

// ATen's linear, not the C++ frontend's: over a contiguous input of any rank it runs one addmm on the flattened
// rows, the bias added inside the matrix product; the frontend's runs a matmul and then a pass adding the bias.
// Through reversible::linear, so that a cell can keep its output instead of recomputing it.
at::Tensor linear(const torch::nn::LinearImpl& layer, const at::Tensor& x) {
  return reversible::linear(x, layer.weight, layer.bias);
}

}  // namespace

LayerNorm2dImpl::LayerNorm2dImpl(int64_t channels, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({channels}));
  bias = register_parameter("bias", at::zeros({channels}));
}

at::Tensor LayerNorm2dImpl::forward(const at::Tensor& x) {
  return at::layer_norm(x.permute({0, 2, 3, 1}), {weight.size(0)}, weight, bias, eps).permute({0, 3, 1, 2});
}

ConvNextBlockImpl::ConvNextBlockImpl(int64_t channels, int64_t kernel_size, double layer_scale_init, double drop_path_)
    : drop_path(drop_path_) {
  gamma = register_parameter("gamma", at::full({channels}, layer_scale_init));
  dwconv = register_module(
      "dwconv",
      torch::nn::Conv2d(
          torch::nn::Conv2dOptions(channels, channels, kernel_size).padding((kernel_size - 1) / 2).groups(channels)));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({channels}).eps(1e-6)));
  pwconv1 = register_module("pwconv1", torch::nn::Linear(channels, 4 * channels));
  pwconv2 = register_module("pwconv2", torch::nn::Linear(4 * channels, channels));
}

at::Tensor ConvNextBlockImpl::forward(const at::Tensor& x) {
  at::Tensor y = dwconv->forward(x).permute({0, 2, 3, 1});
  // The widening product is never kept (reversible::linear keeps contracting ones): fused with its GELU.
  y = linear(*pwconv2, fused_linear_gelu(norm->forward(y), pwconv1->weight, pwconv1->bias));
  // Layer scale, drop path and the residual in one pass over NHWC: x + y * (gamma * mask), the per-sample mask
  // folded into the per-channel gamma.
  const at::Tensor scale = drop_path > 0.0 && is_training() ? gamma * drop_path_scale(y, drop_path) : gamma;
  return at::addcmul(x.permute({0, 2, 3, 1}), y, scale).permute({0, 3, 1, 2});
}

UpSampleConvnextImpl::UpSampleConvnextImpl(int64_t ratio, int64_t in_channels, int64_t out_channels)
    : scale(int64_t{1} << ratio) {
  channel_reschedule = register_module(
      "channel_reschedule",
      torch::nn::Sequential(torch::nn::Linear(in_channels, out_channels),
                            torch::nn::LayerNorm(torch::nn::LayerNormOptions({out_channels}).eps(1e-6))));
}

at::Tensor UpSampleConvnextImpl::forward(const at::Tensor& x) {
  at::Tensor y = linear(*channel_reschedule->ptr<torch::nn::LinearImpl>(0), x.permute({0, 2, 3, 1}));
  y = channel_reschedule[1]->as<torch::nn::LayerNorm>()->forward(y).permute({0, 3, 1, 2});
  return at::upsample_nearest2d(y, {y.size(2) * scale, y.size(3) * scale});
}

FusionImpl::FusionImpl(int64_t level_, const std::vector<int64_t>& channels, bool first_column_)
    : level(level_), first_column(first_column_) {
  if (level > 0)
    down = register_module(
        "down", torch::nn::Sequential(
                    torch::nn::Conv2d(torch::nn::Conv2dOptions(channels[level - 1], channels[level], 2).stride(2)),
                    LayerNorm2d(channels[level])));
  if (!first_column && level < 3) up = register_module("up", UpSampleConvnext(1, channels[level + 1], channels[level]));
}

at::Tensor FusionImpl::forward(const at::Tensor& down_input, const at::Tensor& up_input) {
  at::Tensor x = down ? down->forward(down_input) : down_input;
  if (up) x = up->forward(up_input) + x;
  return x;
}

RevColLevel::RevColLevel(int64_t level, const std::vector<int64_t>& channels, const std::vector<int64_t>& layers,
                         int64_t kernel_size, bool first_column, const std::vector<double>& drop_path_rates,
                         double layer_scale_init) {
  fusion = register_module("fusion", Fusion(level, channels, first_column));
  blocks = register_module("blocks", torch::nn::Sequential());
  int64_t first_block = 0;
  for (int64_t k = 0; k < level; ++k) first_block += layers[k];
  for (int64_t i = 0; i < layers[level]; ++i)
    blocks->push_back(ConvNextBlock(channels[level], kernel_size, layer_scale_init, drop_path_rates[first_block + i]));
}

at::Tensor RevColLevel::forward(const at::Tensor& lower, const at::Tensor& upper) {
  return reversible::run_in_chunks(blocks, fusion->forward(lower, upper));
}

namespace {

// One column ("subnet" in the seed): four alphas and four levels, put into the grid as column j.
class RevColColumnImpl : public torch::nn::Module {
 public:
  RevColColumnImpl(const RevColOptions& o, int64_t j, const std::vector<double>& rates, reversible::ColumnGrid& grid) {
    std::vector<at::Tensor> alphas;  // registered before the levels, as the seed's state_dict orders them
    for (int64_t k = 0; k < 4; ++k)
      alphas.push_back(
          register_parameter("alpha" + std::to_string(k), at::full({1, o.channels()[k], 1, 1}, o.alpha_init())));
    for (int64_t k = 0; k < 4; ++k)
      grid.add_level(*this, "level" + std::to_string(k),
                     std::make_shared<RevColLevel>(k, o.channels(), o.layers(), o.kernel_size(), j == 0, rates,
                                                   o.layer_scale_init()),
                     j, alphas[k]);
  }
};

struct Variant {
  std::vector<int64_t> channels, layers;
  int64_t columns;
  double drop_path;
};

const std::map<std::string, Variant>& variants() {
  static const std::map<std::string, Variant> table = {
      {"tiny", {{64, 128, 256, 512}, {2, 2, 4, 2}, 4, 0.1}},
      {"small", {{64, 128, 256, 512}, {2, 2, 4, 2}, 8, 0.3}},
      {"base", {{72, 144, 288, 576}, {1, 1, 3, 2}, 16, 0.4}},
      {"large", {{128, 256, 512, 1024}, {1, 2, 6, 2}, 8, 0.5}},
      {"xlarge", {{224, 448, 896, 1792}, {1, 2, 6, 2}, 8, 0.5}},
  };
  return table;
}

}  // namespace

RevColOptions revcol_variant(const std::string& name) {
  auto it = variants().find(name);
  if (it == variants().end()) {
    std::string known;
    for (const auto& kv : variants()) known += (known.empty() ? "" : ", ") + kv.first;
    throw UnknownNameError("unknown RevCol variant '" + name + "' (known: " + known + ")");
  }
  return RevColOptions(it->second.channels, it->second.layers, it->second.columns).drop_path(it->second.drop_path);
}

std::vector<std::string> revcol_variant_names() { return {"tiny", "small", "base", "large", "xlarge"}; }

RevColImpl::RevColImpl(RevColOptions opts) : options(std::move(opts)) {
  const auto& ch = options.channels();
  const auto& ly = options.layers();
  TORCH_CHECK(ch.size() == 4 && ly.size() == 4, "RevCol: channels and layers need four entries each, got ", ch.size(),
              " and ", ly.size());
  TORCH_CHECK(options.columns() >= 1, "RevCol: columns must be at least 1, got ", options.columns());
  TORCH_CHECK(options.kernel_size() >= 1 && options.kernel_size() % 2 == 1,
              "RevCol: kernel_size must be odd and positive, got ", options.kernel_size());
  TORCH_CHECK(options.drop_path() >= 0.0 && options.drop_path() < 1.0, "RevCol: drop_path must be in [0, 1), got ",
              options.drop_path());
  for (int64_t k = 0; k < 4; ++k)
    TORCH_CHECK(ch[k] > 0 && ly[k] >= 0, "RevCol: level ", k, " needs channels > 0 and layers >= 0");
  options_ = options.column_options();

  stem = register_module(
      "stem",
      torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels(), ch[0], 4).stride(4)),
                            LayerNorm2d(ch[0])));
  const int64_t total_blocks = ly[0] + ly[1] + ly[2] + ly[3];
  std::vector<double> rates;  // the seed's torch.linspace(0, drop_path, sum(layers))
  for (int64_t i = 0; i < total_blocks; ++i)
    rates.push_back(total_blocks > 1 ? options.drop_path() * static_cast<double>(i) / (total_blocks - 1) : 0.0);
  for (int64_t j = 0; j < options.columns(); ++j)
    register_module("subnet" + std::to_string(j), std::make_shared<RevColColumnImpl>(options, j, rates, grid_));
  reset_parameters();
  // The columns run channels last (their LayerNorms write NHWC), so their convolutions' weights are kept in that
  // layout too: in NCHW, every call (forward, recompute and backward) would convert them first.
  at::NoGradGuard no_grad;
  for (const auto& item : named_modules("", /*include_self=*/false))
    if (auto* conv = item.value()->as<torch::nn::Conv2d>(); conv && item.key().rfind("subnet", 0) == 0)
      conv->weight.set_data(conv->weight.contiguous(at::MemoryFormat::ChannelsLast));
}

void RevColImpl::reset_parameters() {
  at::NoGradGuard no_grad;
  for (const auto& m : modules(/*include_self=*/false)) {
    at::Tensor weight, bias;
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      weight = conv->weight;
      bias = conv->bias;
    } else if (auto* linear = m->as<torch::nn::Linear>()) {
      weight = linear->weight;
      bias = linear->bias;
    } else {
      continue;
    }
    init::trunc_normal_(weight, 0.0, 0.02);
    if (bias.defined()) bias.zero_();
  }
}

at::Tensor RevColImpl::column_input(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == options.in_channels(), "RevCol: expected input of shape [N, ",
              options.in_channels(), ", H, W], got ", x.sizes());
  TORCH_CHECK(x.size(2) % 32 == 0 && x.size(3) % 32 == 0,
              "RevCol: input height and width must be multiples of 32, got ", x.size(2), "x", x.size(3));
  return stem->forward(x);
}

std::vector<at::Tensor> RevColImpl::forward(const at::Tensor& x) {
  std::vector<at::Tensor> features = run_columns(column_input(x));
  if (at::GradMode::is_enabled())
    for (auto& f : features) f = GradientInLayout::apply(f);
  return features;
}

}  // namespace revkit
