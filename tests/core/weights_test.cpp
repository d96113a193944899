#include "core/weights.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <torch/nn/modules/linear.h>

#include "core/error.h"

TEST_CASE("load_named_tensors copies by name and names every mismatch") {
  torch::nn::Linear linear(3, 2);
  std::map<std::string, at::Tensor> good{{"weight", at::ones({2, 3}, at::kDouble)}, {"bias", at::full({2}, 7.0)}};
  revkit::load_named_tensors(*linear, good, "w.safetensors");
  CHECK(linear->weight.sum().item<float>() == 6.0f);
  CHECK((linear->weight.scalar_type() == at::kFloat));
  CHECK(linear->bias[1].item<float>() == 7.0f);

  std::map<std::string, at::Tensor> bad{{"weight", at::ones({3, 2})}, {"extra", at::ones({1})}};
  CHECK_THROWS_WITH_AS(revkit::load_named_tensors(*linear, bad, "w.safetensors"),
                       "w.safetensors: 3 weight problems: 'weight' has shape [3, 2], the model expects [2, 3]; "
                       "missing 'bias'; 'extra' is not in the model",
                       revkit::InputError);
  std::map<std::string, at::Tensor> prefixed{
      {"m.weight", at::zeros({2, 3})}, {"m.bias", at::zeros({2})}, {"other", at::ones({1})}};
  revkit::load_named_tensors(*linear, prefixed, "p.safetensors", "m.");
  CHECK(linear->weight.abs().sum().item<float>() == 0.0f);
}

TEST_CASE("count_parameters counts every element below a module") {
  torch::nn::Linear linear(3, 2);
  CHECK(revkit::count_parameters(*linear) == 3 * 2 + 2);
}
