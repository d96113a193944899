#include "reversible/testing.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <limits>

#include "reversible/reversible_module.h"
#include "toy_levels.h"

using namespace revkit;
using reversible::MemoryMode;

TEST_CASE("relative difference: hand-computed cases") {
  at::Tensor a = at::tensor({1.0, 2.0, 2.0}), b = at::tensor({1.0, 2.0, 3.0});
  CHECK(reversible::relative_difference(a, b) == doctest::Approx(1.0 / std::sqrt(14.0)));
  CHECK(reversible::relative_difference(b, b) == 0.0);
  // undefined counts as zeros; an all-zero reference gives the absolute norm
  CHECK(reversible::relative_difference(at::Tensor(), b) == doctest::Approx(1.0));
  CHECK(reversible::relative_difference(at::Tensor(), at::zeros({3})) == 0.0);
  CHECK(reversible::relative_difference(at::tensor({3.0, 4.0}), at::zeros({2})) == doctest::Approx(5.0));
  CHECK_THROWS(reversible::relative_difference(at::zeros({2}), at::zeros({3})));
}

TEST_CASE("relative difference: a NaN or an infinity on either side is the worst difference, never a pass") {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  const at::Tensor b = at::tensor({1.0, 2.0});
  CHECK(reversible::relative_difference(at::tensor({1.0, nan}), b) == inf);
  CHECK(reversible::relative_difference(b, at::tensor({nan, 2.0})) == inf);
  CHECK(reversible::relative_difference(at::tensor({nan, 2.0}), at::tensor({nan, 2.0})) == inf);
  CHECK(reversible::relative_difference(at::tensor({inf, 2.0}), at::tensor({inf, 2.0})) == inf);
  // Behind a first, finite entry, a NaN gradient is still what the report calls worst.
  reversible::EquivalenceReport r;
  r.add("parameter gradients", "w", at::tensor({1.0}), at::tensor({1.0}));
  r.add("parameter gradients", "b", at::tensor({nan}), at::tensor({1.0}));
  CHECK(r.worst("parameter gradients").name == "b");
  CHECK_FALSE(r.worst("parameter gradients").relative <= 1e-5);
}

TEST_CASE("report: worst per category, within a tolerance") {
  reversible::EquivalenceReport r;
  r.add("outputs", "o0", at::tensor({1.0}), at::tensor({1.0}));
  r.add("parameter gradients", "w", at::tensor({1.1}), at::tensor({1.0}));
  r.add("parameter gradients", "b", at::tensor({1.01}), at::tensor({1.0}));
  CHECK(r.worst("parameter gradients").name == "w");
  CHECK(r.worst("parameter gradients").relative == doctest::Approx(0.1));
  CHECK(r.worst("buffers").name.empty());
  CHECK(r.categories() == std::vector<std::string>{"outputs", "parameter gradients"});
  CHECK(r.within(0.11));
  CHECK_FALSE(r.within(0.05));
  r.rng_stream_equal = false;
  CHECK_FALSE(r.within(1.0));
}

TEST_CASE("tolerances by mode and dtype") {
  CHECK(reversible::default_tolerance(MemoryMode::Column, at::kDouble) == 1e-10);
  CHECK(reversible::default_tolerance(MemoryMode::Full, at::kDouble) == 1e-8);
  CHECK(reversible::default_tolerance(MemoryMode::Off, at::kFloat) == 1e-5);
  CHECK(reversible::default_tolerance(MemoryMode::Full, at::kFloat) == 2e-4);
}

TEST_CASE("compare_memory_modes finds a difference: dropout without RNG replay draws other masks") {
  at::manual_seed(0);
  testing::ToyStack toy(testing::ToyOptions{3, 2, 3, 1.0, 0.5});
  toy->to(at::kDouble);
  at::Tensor x = at::randn({2, 3, 6, 6}, at::kDouble);
  auto forward = [&](const at::Tensor& in) { return toy->forward(in); };
  reversible::ModeComparison cmp;
  cmp.mode = MemoryMode::Full;
  const auto replayed = reversible::compare_memory_modes(*toy, forward, x, cmp);
  CHECK(replayed.within(1e-8));
  toy->column_options().preserve_rng_state(false);
  const auto not_replayed = reversible::compare_memory_modes(*toy, forward, x, cmp);
  CHECK(not_replayed.worst("parameter gradients").relative > 1e-2);
  CHECK(not_replayed.worst("outputs").relative == 0.0);  // the forward itself is the same
  // The comparison puts the model's own options back.
  CHECK(toy->column_options().memory_mode() == MemoryMode::Column);
  CHECK_FALSE(toy->column_options().preserve_rng_state());
}

TEST_CASE("compare_memory_modes refuses a model with no reversible part: its modes could not differ") {
  torch::nn::Linear plain(3, 3);
  auto forward = [&](const at::Tensor& in) { return std::vector<at::Tensor>{plain->forward(in)}; };
  CHECK_THROWS_WITH(reversible::compare_memory_modes(*plain, forward, at::randn({2, 3}), reversible::ModeComparison{}),
                    doctest::Contains("the model has no reversible part"));
}
