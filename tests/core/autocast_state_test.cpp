#include "core/autocast_state.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <doctest/doctest.h>

#include <memory>

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

namespace {
AutocastState cpu_bf16() {
  AutocastState s = AutocastState::current();
  s.cpu_enabled = true;
  s.cpu_dtype = at::kBFloat16;
  return s;
}
}  // namespace

TEST_CASE("nested guards clear autocast's cache of weight casts when the outermost one exits, as PyTorch's do") {
  at::Tensor w = at::ones({2, 2}).requires_grad_(true);  // a weight: a float leaf that requires grad gets cached
  const at::Tensor x = at::ones({1, 2});
  auto product = [&] { return at::mm(x, w).sum().item<float>(); };
  {
    AutocastStateGuard outer(cpu_bf16());
    CHECK(product() == 4.0f);
    {
      at::NoGradGuard no_grad;
      w.mul_(2);  // an optimizer step: the weight changes, its cached bf16 copy does not
    }
    {
      AutocastStateGuard inner(cpu_bf16());
      CHECK(product() == 4.0f);  // within one region the cast is reused, stale
    }
    CHECK(product() == 4.0f);  // the inner exit kept the cache
  }
  AutocastStateGuard next(cpu_bf16());
  CHECK(product() == 8.0f);  // a new region casts the weight as it is now
}

TEST_CASE("with the cache off a region casts each weight afresh, and leaves the cache as it was") {
  at::Tensor w = at::ones({2, 2}).requires_grad_(true);
  const at::Tensor x = at::ones({1, 2});
  auto product = [&] { return at::mm(x, w).sum().item<float>(); };
  AutocastStateGuard region(cpu_bf16());
  CHECK(product() == 4.0f);  // cached
  {
    at::NoGradGuard no_grad;
    w.mul_(2);
  }
  {
    AutocastCacheOffGuard off;  // what a reversible recompute runs under
    CHECK(product() == 8.0f);
  }
  CHECK(at::autocast::is_autocast_cache_enabled());
  CHECK(product() == 4.0f);  // the region's cached cast is still there, untouched
}
