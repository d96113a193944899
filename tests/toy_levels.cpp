#include "toy_levels.h"

#include <ATen/ATen.h>

namespace revkit::testing {

ToyLevel::ToyLevel(const ToyOptions& o, bool has_upper) : dropout(o.dropout) {
  // Before BatchNorm a conv bias has an exactly zero gradient, which no relative comparison can judge.
  conv = register_module(
      "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.channels, o.channels, 3).padding(1).bias(!o.batchnorm)));
  if (has_upper) up = register_module("up", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.channels, o.channels, 1)));
  if (o.batchnorm) norm = register_module("norm", torch::nn::BatchNorm2d(o.channels));
}

at::Tensor ToyLevel::forward(const at::Tensor& lower, const at::Tensor& upper) {
  ++calls;
  at::Tensor y = conv->forward(lower);
  if (at::GradMode::is_enabled()) seen_with_grad.push_back(y.scalar_type());
  if (norm) y = norm->forward(y);
  y = at::tanh(y);
  if (upper.defined() && up) y = y + up->forward(upper);
  if (dropout > 0) y = at::dropout(y, dropout, is_training());
  return y;
}

ToyStackImpl::ToyStackImpl(const ToyOptions& o, reversible::MemoryMode mode) {
  options_ = reversible::ColumnOptions(mode);
  for (int64_t j = 0; j < o.columns; ++j)
    for (int64_t k = 0; k < o.levels; ++k) {
      const std::string column = "col" + std::to_string(j);
      const at::Tensor alpha =
          register_parameter(column + "_alpha" + std::to_string(k), at::full({1, o.channels, 1, 1}, o.alpha));
      all_levels.push_back(grid_.add_level(*this, column + "_level" + std::to_string(k),
                                           std::make_shared<ToyLevel>(o, j > 0 && k + 1 < o.levels), j, alpha));
    }
}

}  // namespace revkit::testing
