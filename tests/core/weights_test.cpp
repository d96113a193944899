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
                       "w.safetensors: 3 weight problems: missing 'bias'; 'weight' has shape [3, 2], the model "
                       "expects [2, 3]; 'extra' is not in the model",
                       revkit::InputError);
  std::map<std::string, at::Tensor> prefixed{
      {"m.weight", at::zeros({2, 3})}, {"m.bias", at::zeros({2})}, {"other", at::ones({1})}};
  revkit::load_named_tensors(*linear, prefixed, "p.safetensors", "m.");
  CHECK(linear->weight.abs().sum().item<float>() == 0.0f);
}

TEST_CASE("names a module derives may be missing; the match says what lined up and what did not") {
  torch::nn::Linear linear(3, 2);
  linear->bias.detach().fill_(5);
  const std::map<std::string, at::Tensor> only_weight{{"weight", at::ones({2, 3})}, {"head.fc", at::ones({4})}};
  CHECK_THROWS_WITH_AS(revkit::load_named_tensors(*linear, only_weight, "w.pt", "", /*strict=*/false),
                       "w.pt: 1 weight problem: missing 'bias'", revkit::InputError);
  const revkit::WeightsMatch m =
      revkit::load_named_tensors(*linear, only_weight, "w.pt", "", /*strict=*/false, {"bias"});
  CHECK(m.matched == std::vector<std::string>{"weight"});
  CHECK(m.derived == std::vector<std::string>{"bias"});
  CHECK(m.unexpected == std::vector<std::string>{"head.fc"});
  CHECK(m.summary() == "1 tensors matched, 0 missing, 1 unexpected (1 derived by the model: bias)");
  CHECK(linear->weight.sum().item<float>() == 6.0f);
  CHECK(linear->bias.sum().item<float>() == 10.0f);  // kept

  const revkit::WeightsMatch shapes = revkit::match_named_tensors(*linear, {{"weight", at::ones({3, 3})}});
  CHECK(shapes.matched.empty());
  CHECK(shapes.missing == std::vector<std::string>{"bias"});
  CHECK(shapes.summary() == "0 tensors matched, 1 missing, 0 unexpected, 1 of another shape");
}

TEST_CASE("count_parameters counts every element below a module") {
  torch::nn::Linear linear(3, 2);
  CHECK(revkit::count_parameters(*linear) == 3 * 2 + 2);
}
