#include "core/fused_linear.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

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

// Whether oneDNN can run this product: float32 on the CPU, outside autocast (whose casts at::linear applies).
bool fusable(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  auto is_float = [](const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.device().is_cpu(); };
  return enabled() && is_float(x) && is_float(weight) && (!bias.defined() || (is_float(bias) && bias.dim() == 1)) &&
         x.dim() >= 2 && x.numel() > 0 && weight.dim() == 2 && weight.is_contiguous() &&
         !at::autocast::is_autocast_enabled(c10::DeviceType::CPU) && at::globalContext().userEnabledMkldnn() &&
         pointwise_linear() != nullptr;
}

bool records(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return at::GradMode::is_enabled() &&
         (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
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

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// at::linear's backward for y = x W^T + b: the products of a flattened addmm's, in the same order, as
// differentiable operations (double backward works). x and W were saved by the node's forward.
variable_list linear_backward(AutogradContext* ctx, const variable_list& grad_outputs) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor& x = saved[0];
  const at::Tensor& weight = saved[1];
  const at::Tensor g = grad_outputs[0].reshape({-1, weight.size(0)});
  variable_list result(4);
  if (ctx->needs_input_grad(0)) result[0] = g.mm(weight).view(x.sizes());
  // g^T x, as at::linear's backward multiplies for a weight used transposed: contiguous like the weight, so that
  // accumulating it into .grad is a plain add.
  if (ctx->needs_input_grad(1)) result[1] = g.t().mm(x.reshape({-1, weight.size(1)}));
  if (ctx->saved_data["bias"].toBool() && ctx->needs_input_grad(2)) result[2] = g.sum(0);
  return result;
}

// oneDNN's product of rows x (two dimensions) with the linear layer's backward.
struct FusedLinearFunction : public torch::autograd::Function<FusedLinearFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["bias"] = bias.has_value();
    return run_fused(x, weight, bias.value_or(at::Tensor()), "none", nullptr);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return linear_backward(ctx, grad_outputs);
  }
};

// An output computed earlier, handed on with the linear layer's backward.
struct LinearFromOutput : public torch::autograd::Function<LinearFromOutput> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, const at::Tensor& output) {
    ctx->save_for_backward({x, weight});
    ctx->saved_data["bias"] = bias.has_value();
    return output;  // an input handed on: autograd makes it a view with this node as its history
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    return linear_backward(ctx, grad_outputs);
  }
};

c10::optional<at::Tensor> optional(const at::Tensor& t) {
  return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt;
}

}  // namespace

at::Tensor linear_from_output(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& output) {
  return LinearFromOutput::apply(x, weight, optional(bias), output);
}

at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!fusable(x, weight, bias)) return at::linear(x, weight, bias);
  if (!records(x, weight, bias)) return run_fused(x, weight, bias, "none", nullptr);
  // The node takes rows: oneDNN's output for more dimensions is a view of its rows, and a view made inside a
  // custom node would refuse in-place changes. Reshaped out here, it is an ordinary view.
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = weight.size(0);
  return FusedLinearFunction::apply(x.reshape({-1, x.size(-1)}), weight, optional(bias)).view(shape);
}

at::Tensor fused_linear_gelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  // With autograd GELU's backward needs its input: the product's output is kept, and GELU is a pass of its own.
  if (!fusable(x, weight, bias) || records(x, weight, bias)) return at::gelu(fused_linear(x, weight, bias));
  return run_fused(x, weight, bias, "gelu", "none");  // "none": the erf form, as at::gelu's default
}

}  // namespace revkit
