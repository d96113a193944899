#include "reversible/reversible_module.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <torch/nn/modules/container/sequential.h>

#include "toy_levels.h"

using namespace revkit;
using reversible::MemoryMode;

namespace {
struct TwoStacks : torch::nn::Module {
  TwoStacks() {
    a = register_module("a", testing::ToyStack(testing::ToyOptions{}));
    b = register_module("b", testing::ToyStack(testing::ToyOptions{}));
  }
  testing::ToyStack a{nullptr}, b{nullptr};
};
}  // namespace

TEST_CASE("set_memory_mode reaches every reversible part of a model") {
  TwoStacks model;
  CHECK(reversible::reversible_modules(model).size() == 2);
  CHECK(reversible::set_memory_mode(model, MemoryMode::Full, 3) == 2);
  CHECK(model.a->column_options().memory_mode() == MemoryMode::Full);
  CHECK(model.b->column_options().store_every() == 3);
  CHECK(reversible::set_memory_mode(*model.a, MemoryMode::Off) == 1);  // the root itself counts
  CHECK(model.a->column_options().memory_mode() == MemoryMode::Off);
  CHECK(model.b->column_options().memory_mode() == MemoryMode::Full);
}

TEST_CASE("measure_drift on a module runs the grid on the module's column input") {
  testing::ToyStack toy(testing::ToyOptions{3, 3, 4, 0.5});
  toy->to(at::kDouble);
  const auto drift = reversible::measure_drift(*toy, at::randn({1, 3, 5, 5}, at::kDouble));
  CHECK(drift.size() == 3);
}

TEST_CASE("measure_drift on a model: each part on the input it receives in the forward pass") {
  TwoStacks model;
  model.a->to(at::kDouble);
  model.b->to(at::kDouble);
  at::Tensor x = at::randn({1, 3, 5, 5}, at::kDouble);
  // b receives a's first output, not the image
  const auto drift = reversible::measure_drift(model, [&] { model.b->forward(model.a->forward(x)[0]); });
  REQUIRE(drift.size() == 2);
  CHECK(drift[0].size() == 1);
  CHECK(drift[1].size() == 1);
  for (const auto& part : drift) CHECK(part[0] < 1e-12);
}
