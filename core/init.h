#pragma once
// Weight initialisers not in LibTorch's torch::nn::init.
#include <ATen/core/Tensor.h>

namespace revkit::init {

// Fills `tensor` in place with a normal(mean, std) distribution truncated to [a, b] (absolute bounds, as
// torch.nn.init.trunc_normal_), from the default generator.
void trunc_normal_(at::Tensor tensor, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0);

}  // namespace revkit::init
