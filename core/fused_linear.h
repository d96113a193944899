#pragma once
// Linear layers as oneDNN inner products on float32 CPU tensors. at::linear writes the bias into its output and
// then multiplies into it; oneDNN adds the bias in the product's own output pass, and where no gradient is recorded
// (inference, and the forward a reversible step runs before it recomputes) applies a following GELU there too.
// With autograd the product gets at::linear's backward and GELU stays a pass of its own: its backward needs the
// product's output. Under autocast, off the CPU, outside float32 or in a LibTorch without oneDNN these are
// at::linear and at::gelu(at::linear(...)); the fused results agree with those to float rounding (the products
// sum in another order). REVKIT_FUSED_LINEAR=0 in the environment turns oneDNN's path off, for comparisons.
#include <ATen/core/Tensor.h>

namespace revkit {

// x W^T + b over the last dimension of x.
at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// GELU (the exact, erf form) of x W^T + b.
at::Tensor fused_linear_gelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// `output`, computed earlier as x W^T + b (kept from a forward pass), handed on as a view with the linear layer's
// history: its backward runs the products of at::linear's own, as differentiable operations.
at::Tensor linear_from_output(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& output);

}  // namespace revkit
