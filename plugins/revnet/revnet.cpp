#include "plugins/revnet/revnet.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace revkit {

ResidualFunctionImpl::ResidualFunctionImpl(int64_t c) {
  auto conv = [c] { return torch::nn::Conv2d(torch::nn::Conv2dOptions(c, c, 3).padding(1).bias(false)); };
  conv1 = register_module("conv1", conv());
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(c));
  conv2 = register_module("conv2", conv());
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(c));
}

at::Tensor ResidualFunctionImpl::forward(const at::Tensor& x) {
  return bn2->forward(conv2->forward(at::relu(bn1->forward(conv1->forward(x)))));
}

RevNetCell::RevNetCell(int64_t channels, int64_t level_, bool first_column_)
    : level(level_), first_column(first_column_) {
  fn = register_module("fn", ResidualFunction(channels));
}

at::Tensor RevNetCell::forward(const at::Tensor& lower, const at::Tensor& upper) {
  if (level == 0) return fn->forward(first_column ? lower : upper);  // c_0 += F(c_1), or a projection of x
  return fn->forward(lower);                                         // c_1 += G(c_0)
}

RevNetStageImpl::RevNetStageImpl(int64_t in_channels, int64_t channels, int64_t blocks, int64_t stride,
                                 const reversible::ColumnOptions& options) {
  TORCH_CHECK(blocks >= 1, "RevNet: a stage needs at least one block, got ", blocks);
  options_ = options;
  down = register_module(
      "down", torch::nn::Sequential(
                  torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, channels, stride).stride(stride).bias(false)),
                  torch::nn::BatchNorm2d(channels)));
  for (int64_t j = 0; j <= blocks; ++j)  // column 0 projects, columns 1..blocks couple
    for (int64_t k = 0; k < 2; ++k) {
      // Additive coupling: alpha is 1 and not trained.
      const at::Tensor alpha =
          register_buffer("alpha" + std::to_string(j) + "_" + std::to_string(k), at::ones({1, channels, 1, 1}));
      grid_.add_level(*this, fmt_name(j, k), std::make_shared<RevNetCell>(channels, k, j == 0), j, alpha);
    }
}

std::string RevNetStageImpl::fmt_name(int64_t j, int64_t k) { return (k == 0 ? "f" : "g") + std::to_string(j); }

at::Tensor RevNetStageImpl::forward(const at::Tensor& x) {
  auto c = run_columns(column_input(x));
  return c[0] + c[1];
}

RevNetImpl::RevNetImpl(const RevNetOptions& o) : options(o) {
  TORCH_CHECK(o.channels().size() == 4 && o.blocks().size() == 4, "RevNet: channels and blocks need four entries each");
  int64_t in = 3;
  for (size_t s = 0; s < 4; ++s) {
    stages.push_back(register_module("stage" + std::to_string(s), RevNetStage(in, o.channels()[s], o.blocks()[s],
                                                                              s == 0 ? 4 : 2, o.column_options())));
    in = o.channels()[s];
  }
}

std::vector<at::Tensor> RevNetImpl::forward(const at::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, "RevNet: expected images [N, 3, H, W], got ", x.sizes());
  TORCH_CHECK(x.size(2) % 32 == 0 && x.size(3) % 32 == 0,
              "RevNet: input height and width must be multiples of 32, got ", x.size(2), "x", x.size(3));
  std::vector<at::Tensor> maps;
  at::Tensor y = x;
  for (auto& stage : stages) maps.push_back(y = stage->forward(y));
  return maps;
}

RevNetOptions revnet_variant(const std::string& name) {
  if (name == "tiny") return RevNetOptions({32, 64, 128, 256}, {2, 2, 4, 2});
  if (name == "small") return RevNetOptions({64, 128, 256, 512}, {2, 2, 6, 2});
  throw UnknownNameError("unknown RevNet variant '" + name + "' (known: small, tiny)");
}

namespace {

void register_revnet(PluginRegistrar* registrar) {
  for (const std::string variant : {"tiny", "small"}) {
    registrar->add_backbone(
        "revnet_" + variant,
        "RevNet-" + variant + ": reversible residual stages, additive coupling (plugin), strides 4-32",
        [variant](const BackboneSettings& s) -> std::shared_ptr<Backbone> {
          RevNetOptions o = revnet_variant(variant);
          if (s.columns) o.blocks(std::vector<int64_t>(4, *s.columns));
          return std::make_shared<RevNetImpl>(o.column_options(s.column_options(o.column_options())));
        });
  }
}

const RevkitPlugin kRevNetPlugin = {REVKIT_PLUGIN_API_VERSION, "revnet", "1.0", &register_revnet};

}  // namespace

const RevkitPlugin& revnet_plugin() { return kRevNetPlugin; }

}  // namespace revkit
