#include "core/autocast_state.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

using namespace revkit;

TEST_CASE("autocast state guard: sets CPU bf16 autocast for a scope and restores the previous state") {
  const AutocastState outside = AutocastState::current();
  CHECK_FALSE(outside.cpu_enabled);
  AutocastState bf16 = outside;
  bf16.cpu_enabled = true;
  bf16.cpu_dtype = at::kBFloat16;
  bf16.cache_enabled = false;
  {
    AutocastStateGuard guard(bf16);
    CHECK((AutocastState::current() == bf16));
    at::Tensor y = at::matmul(at::ones({2, 2}), at::ones({2, 2}));
    CHECK((y.scalar_type() == at::kBFloat16));
  }
  CHECK((AutocastState::current() == outside));
  CHECK((at::matmul(at::ones({2, 2}), at::ones({2, 2})).scalar_type() == at::kFloat));
}
