#include "core/fused_linear.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdlib>
#include <optional>
#include <string>

namespace revkit {
namespace {

// oneDNN's inner product with an operation fused into its output, as LibTorch registers it for its graph
// compiler (mkldnn::_linear_pointwise), or none in a LibTorch built without oneDNN. Called boxed: the C++ types
// of its string arguments differ between LibTorch versions, its schema does not.
const c10::OperatorHandle* pointwise_linear() {
  static const std::optional<c10::OperatorHandle> op =
      at::hasMKLDNN() ? c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""}) : std::nullopt;
  return op ? &*op : nullptr;
}

// REVKIT_FUSED_LINEAR=0 runs at::linear and at::gelu everywhere (for comparisons).
bool enabled() {
  static const bool on = [] {
    const char* env = std::getenv("REVKIT_FUSED_LINEAR");
    return !(env && std::string(env) == "0");
  }();
  return on;
}

bool fusable(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  auto is_float = [](const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.device().is_cpu(); };
  const bool records = at::GradMode::is_enabled() &&
                       (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  return enabled() && !records && is_float(x) && is_float(weight) &&
         (!bias.defined() || (is_float(bias) && bias.dim() == 1)) && x.dim() >= 2 && x.numel() > 0 &&
         weight.dim() == 2 && weight.is_contiguous() && !at::autocast::is_autocast_enabled(c10::DeviceType::CPU) &&
         at::globalContext().userEnabledMkldnn() && pointwise_linear() != nullptr;
}

at::Tensor run_fused(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const char* operation,
                     const char* algorithm) {
  torch::jit::Stack stack{x,
                          weight,
                          bias.defined() ? c10::IValue(bias) : c10::IValue(),
                          c10::IValue(std::string(operation)),
                          c10::IValue(c10::List<std::optional<at::Scalar>>()),
                          algorithm ? c10::IValue(std::string(algorithm)) : c10::IValue()};
  pointwise_linear()->callBoxed(stack);
  return stack.at(0).toTensor();
}

}  // namespace

at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!fusable(x, weight, bias)) return at::linear(x, weight, bias);
  return run_fused(x, weight, bias, "none", nullptr);
}

at::Tensor fused_linear_gelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!fusable(x, weight, bias)) return at::gelu(at::linear(x, weight, bias));
  return run_fused(x, weight, bias, "gelu", "none");  // "none": the erf form, as at::gelu's default
}

}  // namespace revkit
