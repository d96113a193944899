#pragma once
// Linear layers that run as one oneDNN inner product where no gradient is recorded. at::linear writes the bias
// into its output and then multiplies into it, and a GELU after it is one more pass over that output; oneDNN
// applies both in the product's own output pass. That is the case for inference and for the forward without
// autograd that a reversible step runs before it recomputes. With autograd recording, under autocast, off the
// CPU, outside float32 or in a LibTorch without oneDNN these are at::linear and at::gelu(at::linear(...)); the
// fused results agree with those to float rounding (the products sum in another order).
// REVKIT_FUSED_LINEAR=0 in the environment turns the fusion off, for comparisons.
#include <ATen/core/Tensor.h>

namespace revkit {

// x W^T + b over the last dimension of x.
at::Tensor fused_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// GELU (the exact, erf form) of x W^T + b.
at::Tensor fused_linear_gelu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

}  // namespace revkit
