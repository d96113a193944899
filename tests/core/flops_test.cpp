#include "core/flops.h"

#include "core/fused_linear.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

TEST_CASE("FLOPs: 2 per multiply-add of convolutions and linear layers, hand-counted") {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 8, 3).stride(2).padding(1).groups(1));
  torch::nn::Linear linear(8, 5);
  at::NoGradGuard no_grad;
  // conv: output 2 x 8 x 16 x 16, each 3 * 3 * 3 multiply-adds
  CHECK(revkit::count_flops([&] { conv->forward(at::zeros({2, 3, 32, 32})); }) == 2 * (2 * 8 * 16 * 16) * 27);
  // linear: 4 rows x 5 outputs x 8 inputs
  CHECK(revkit::count_flops([&] { linear->forward(at::zeros({4, 8})); }) == 2 * 4 * 5 * 8);
  torch::nn::Conv2d depthwise(torch::nn::Conv2dOptions(4, 4, 3).padding(1).groups(4));
  CHECK(revkit::count_flops([&] { depthwise->forward(at::zeros({1, 4, 8, 8})); }) == 2 * (4 * 8 * 8) * 9);
  CHECK(revkit::count_flops([&] { at::relu(at::zeros({10})); }) == 0);
}

TEST_CASE("FLOPs: oneDNN's fused linear counts as the linear layer it is") {
  at::NoGradGuard no_grad;  // the fused path
  const at::Tensor x = at::randn({2, 3, 8}), w = at::randn({6, 8}), b = at::randn({6});
  CHECK(revkit::count_flops([&] { revkit::fused_linear_gelu(x, w, b); }) == 2 * (2 * 3) * 6 * 8);
  CHECK(revkit::count_flops([&] { revkit::fused_linear(x, w); }) == 2 * (2 * 3) * 6 * 8);
}
