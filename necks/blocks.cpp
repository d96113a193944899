#include "necks/blocks.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace revkit {

int64_t autopad(int64_t kernel, int64_t dilation) { return (dilation * (kernel - 1) + 1) / 2; }

ConvImpl::ConvImpl(const ConvOptions& o) : act(o.act()) {
  TORCH_CHECK(o.in_channels() > 0 && o.out_channels() > 0 && o.kernel_size() > 0 && o.stride() > 0 && o.groups() > 0,
              "Conv: channels, kernel, stride and groups must be positive");
  TORCH_CHECK(o.in_channels() % o.groups() == 0 && o.out_channels() % o.groups() == 0, "Conv: channels ",
              o.in_channels(), " -> ", o.out_channels(), " are not divisible by groups ", o.groups());
  const int64_t pad = o.padding() >= 0 ? o.padding() : autopad(o.kernel_size(), o.dilation());
  conv = register_module("conv",
                         torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size())
                                               .stride(o.stride())
                                               .padding(pad)
                                               .groups(o.groups())
                                               .dilation(o.dilation())
                                               .bias(false)));
  bn = register_module("bn",
                       torch::nn::BatchNorm2d(torch::nn::BatchNormOptions(o.out_channels()).eps(1e-3).momentum(0.03)));
}

at::Tensor ConvImpl::forward(const at::Tensor& x) {
  const at::Tensor z = conv->forward(x);
  at::Tensor y = batch_norm_sync && is_training() ? batch_norm_sync->forward(z, *bn) : bn->forward(z);
  return act ? at::silu(y) : y;
}

BottleneckImpl::BottleneckImpl(int64_t c1, int64_t c2, bool shortcut, int64_t groups, double expansion,
                               int64_t first_kernel) {
  const auto hidden = static_cast<int64_t>(c2 * expansion);
  cv1 = register_module("cv1", Conv(ConvOptions(c1, hidden, first_kernel)));
  cv2 = register_module("cv2", Conv(ConvOptions(hidden, c2, 3).groups(groups)));
  add = shortcut && c1 == c2;
}

at::Tensor BottleneckImpl::forward(const at::Tensor& x) {
  at::Tensor y = cv2->forward(cv1->forward(x));
  return add ? x + y : y;
}

C3Impl::C3Impl(int64_t c1, int64_t c2, int64_t n, bool shortcut, int64_t groups, double expansion) {
  const auto hidden = static_cast<int64_t>(c2 * expansion);
  cv1 = register_module("cv1", Conv(ConvOptions(c1, hidden, 1)));
  cv2 = register_module("cv2", Conv(ConvOptions(c1, hidden, 1)));
  cv3 = register_module("cv3", Conv(ConvOptions(2 * hidden, c2, 1)));
  m = register_module("m", torch::nn::Sequential());
  for (int64_t i = 0; i < n; ++i) m->push_back(Bottleneck(hidden, hidden, shortcut, groups, 1.0));
}

at::Tensor C3Impl::forward(const at::Tensor& x) {
  return cv3->forward(at::cat({m->forward(cv1->forward(x)), cv2->forward(x)}, 1));
}

C2fImpl::C2fImpl(int64_t c1, int64_t c2, int64_t n, bool shortcut, int64_t groups, double expansion)
    : hidden(static_cast<int64_t>(c2 * expansion)) {
  cv1 = register_module("cv1", Conv(ConvOptions(c1, 2 * hidden, 1)));
  cv2 = register_module("cv2", Conv(ConvOptions((2 + n) * hidden, c2, 1)));
  m = register_module("m", torch::nn::ModuleList());
  for (int64_t i = 0; i < n; ++i) m->push_back(Bottleneck(hidden, hidden, shortcut, groups, 1.0, /*first_kernel=*/3));
}

at::Tensor C2fImpl::forward(const at::Tensor& x) {
  std::vector<at::Tensor> parts = cv1->forward(x).chunk(2, 1);
  for (const auto& block : *m) parts.push_back(block->as<Bottleneck>()->forward(parts.back()));
  return cv2->forward(at::cat(parts, 1));
}

SPPFImpl::SPPFImpl(int64_t c1, int64_t c2, int64_t kernel_) : kernel(kernel_) {
  TORCH_CHECK(kernel > 0 && kernel % 2 == 1, "SPPF: the pooling kernel must be odd and positive, got ", kernel);
  const int64_t hidden = c1 / 2;
  cv1 = register_module("cv1", Conv(ConvOptions(c1, hidden, 1)));
  cv2 = register_module("cv2", Conv(ConvOptions(hidden * 4, c2, 1)));
}

at::Tensor SPPFImpl::forward(const at::Tensor& x) {
  auto pool = [&](const at::Tensor& t) {
    return at::max_pool2d(t, {kernel, kernel}, {1, 1}, {kernel / 2, kernel / 2});
  };
  at::Tensor a = cv1->forward(x);
  at::Tensor b = pool(a), c = pool(b);
  return cv2->forward(at::cat({a, b, c, pool(c)}, 1));
}

at::Tensor ConcatImpl::forward(const std::vector<at::Tensor>& inputs) { return at::cat(inputs, dimension); }

UpsampleImpl::UpsampleImpl(double scale, std::string mode_) : scale_factor(scale), mode(std::move(mode_)) {
  TORCH_CHECK(scale_factor > 0, "Upsample: scale factor must be positive, got ", scale_factor);
  TORCH_CHECK(mode == "nearest" || mode == "bilinear", "Upsample: mode must be 'nearest' or 'bilinear', got '", mode,
              "'");
}

at::Tensor UpsampleImpl::forward(const at::Tensor& x) {
  const auto h = static_cast<int64_t>(x.size(2) * scale_factor), w = static_cast<int64_t>(x.size(3) * scale_factor);
  if (mode == "nearest") return at::upsample_nearest2d(x, {h, w});
  return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
}

}  // namespace revkit
