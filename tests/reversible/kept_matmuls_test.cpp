#include "reversible/kept_matmuls.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <doctest/doctest.h>
#include <torch/autograd.h>

#include "core/autocast_state.h"
#include "core/fused_linear.h"

using namespace revkit;
using reversible::KeptMatmuls;

namespace {

struct Layer {
  at::Tensor x, weight, bias;
};

Layer make_layer(at::ScalarType dtype = at::kDouble) {
  at::manual_seed(3);
  const auto o = at::TensorOptions().dtype(dtype);
  return {at::randn({2, 3, 5, 6}, o).requires_grad_(true), at::randn({4, 6}, o).requires_grad_(true),
          at::randn({4}, o).requires_grad_(true)};
}

// The gradients of sum(y * probe) with respect to x, weight and bias.
std::vector<at::Tensor> gradients(const at::Tensor& y, const Layer& l) {
  const at::Tensor probe = at::linspace(-1, 1, y.numel(), y.options().dtype(at::kDouble)).view(y.sizes());
  return torch::autograd::grad({(y.to(at::kDouble) * probe).sum()}, {l.x, l.weight, l.bias}, {}, false, false,
                              /*allow_unused=*/true);
}

}  // namespace

TEST_CASE("outside a cell, reversible::linear is at::linear") {
  const Layer l = make_layer();
  CHECK(at::equal(reversible::linear(l.x, l.weight, l.bias), at::linear(l.x, l.weight, l.bias)));
  CHECK(at::equal(reversible::linear(l.x, l.weight), at::linear(l.x, l.weight)));
}

TEST_CASE("a replayed product returns the kept output and the linear layer's gradients, bit for bit") {
  const Layer l = make_layer();
  KeptMatmuls kept;
  {
    at::NoGradGuard no_grad;  // as a cell's forward runs
    reversible::RecordMatmulsGuard record(kept);
    reversible::linear(l.x, l.weight, l.bias);
    reversible::linear(l.x, l.weight);
  }
  REQUIRE(kept.outputs.size() == 2);
  CHECK(kept.bytes() == 2 * 2 * 3 * 5 * 4 * 8);
  for (const bool with_bias : {true, false}) {
    reversible::ReplayMatmulsGuard replay(kept);
    const at::Tensor y = reversible::linear(l.x, l.weight, l.bias);
    const at::Tensor y2 = reversible::linear(l.x, l.weight);
    replay.finish(0, 0);
    // The kept tensor itself is handed on, not a product computed again.
    CHECK(y.data_ptr() == kept.outputs[0].data_ptr());
    const at::Tensor& replayed = with_bias ? y : y2;
    const at::Tensor plain = with_bias ? at::linear(l.x, l.weight, l.bias) : at::linear(l.x, l.weight);
    CHECK(at::equal(replayed, plain));
    const auto got = gradients(replayed, l);
    const auto want = gradients(plain, l);
    CHECK(at::equal(got[0], want[0]));
    CHECK(at::equal(got[1], want[1]));
    // Contiguous like the weight, as at::linear's own: accumulating it into .grad is then a plain add.
    CHECK(got[1].is_contiguous());
    if (with_bias) CHECK(at::equal(got[2], want[2]));
  }
}

TEST_CASE("a widening product is not kept: the recompute multiplies it again") {
  at::manual_seed(4);
  const at::Tensor x = at::randn({3, 6}), wide = at::randn({7, 6}), narrow = at::randn({6, 6});
  at::NoGradGuard no_grad;  // the kept tensor itself comes back
  KeptMatmuls kept;
  {
    reversible::RecordMatmulsGuard record(kept);
    reversible::linear(x, wide);
    reversible::linear(x, narrow);  // as many outputs as inputs: kept
  }
  REQUIRE(kept.outputs.size() == 1);
  CHECK(kept.outputs[0].size(1) == 6);
  reversible::ReplayMatmulsGuard replay(kept);
  CHECK(at::equal(reversible::linear(x, wide), revkit::fused_linear(x, wide)));  // multiplied, without grad fused
  CHECK(reversible::linear(x, narrow).data_ptr() == kept.outputs[0].data_ptr());
  replay.finish(0, 0);
}

TEST_CASE("a replay without grad hands the kept output on as a view of it") {
  const Layer l = make_layer();
  KeptMatmuls kept;
  at::NoGradGuard no_grad;
  {
    reversible::RecordMatmulsGuard record(kept);
    reversible::linear(l.x, l.weight, l.bias);
  }
  reversible::ReplayMatmulsGuard replay(kept);
  const at::Tensor y = reversible::linear(l.x, l.weight, l.bias);
  CHECK(y.data_ptr() == kept.outputs[0].data_ptr());
  CHECK(!y.is_same(kept.outputs[0]));  // what autograd does with it later stays off the kept tensor
  replay.finish(0, 0);
}

TEST_CASE("a recompute that differs from its forward, or a kept output changed in place, is refused") {
  const Layer l = make_layer();
  KeptMatmuls kept;
  at::Tensor y;
  {
    at::NoGradGuard no_grad;
    reversible::RecordMatmulsGuard record(kept);
    y = reversible::linear(l.x, l.weight, l.bias);
  }
  {
    reversible::ReplayMatmulsGuard replay(kept);
    reversible::linear(l.x, l.weight, l.bias);
    CHECK_THROWS_WITH_AS(reversible::linear(l.x, l.weight, l.bias), doctest::Contains("ran more matrix products (2)"),
                         c10::Error);
  }
  {
    reversible::ReplayMatmulsGuard replay(kept);
    CHECK_THROWS_WITH_AS(replay.finish(1, 2), doctest::Contains("level 2 of column 1 ran 0 matrix products"),
                         c10::Error);
    CHECK_THROWS_WITH_AS(reversible::linear(l.x, l.weight.narrow(0, 0, 3), l.bias.narrow(0, 0, 3)),
                         doctest::Contains("has shape [2, 3, 5, 3] but its forward kept [2, 3, 5, 4]"), c10::Error);
  }
  {
    at::NoGradGuard no_grad;
    y.mul_(2);
  }
  reversible::ReplayMatmulsGuard replay(kept);
  CHECK_THROWS_WITH_AS(reversible::linear(l.x, l.weight, l.bias), doctest::Contains("modified in place"), c10::Error);
}

TEST_CASE("timed recording counts the products' time; recording nests and restores the outer scope") {
  const Layer l = make_layer();
  KeptMatmuls outer, inner;
  {
    reversible::RecordMatmulsGuard record(outer, /*timed=*/true);
    reversible::linear(l.x, l.weight, l.bias);
    {
      reversible::RecordMatmulsGuard nested(inner);
      reversible::linear(l.x, l.weight, l.bias);
    }
    reversible::linear(l.x, l.weight, l.bias);
  }
  CHECK(outer.outputs.size() == 2);
  CHECK(inner.outputs.size() == 1);
  CHECK(outer.ms > 0.0);
  CHECK(inner.ms == 0.0);
  CHECK(!outer.outputs[0].requires_grad());  // kept detached: no graph held through them
  {
    reversible::RecordMatmulsGuard record(outer);
    reversible::NoMatmulScopeGuard none;  // as a grid inside a level runs: the outer cell keeps none of it
    reversible::linear(l.x, l.weight, l.bias);
  }
  CHECK(outer.outputs.size() == 2);
  reversible::linear(l.x, l.weight, l.bias);  // outside every scope: nothing recorded
  CHECK(outer.outputs.size() == 2);
}

TEST_CASE("under autocast, the replay multiplies in the forward's dtype and the weights get float32 gradients") {
  const Layer l = make_layer(at::kFloat);
  KeptMatmuls kept;
  AutocastState autocast;
  autocast.cpu_enabled = true;
  autocast.cpu_dtype = at::kBFloat16;
  AutocastStateGuard region(autocast.without_cache());
  {
    at::NoGradGuard no_grad;
    reversible::RecordMatmulsGuard record(kept);
    reversible::linear(l.x, l.weight, l.bias);
  }
  REQUIRE((kept.outputs[0].scalar_type() == at::kBFloat16));
  at::Tensor replayed;
  {
    reversible::ReplayMatmulsGuard replay(kept);
    replayed = reversible::linear(l.x, l.weight, l.bias);
  }
  const auto got = gradients(replayed, l);
  const auto want = gradients(at::linear(l.x, l.weight, l.bias), l);
  for (size_t i = 0; i < 3; ++i) {
    CHECK((got[i].scalar_type() == at::kFloat));
    CHECK(at::allclose(got[i], want[i], 1e-2, 1e-2));
  }
}
