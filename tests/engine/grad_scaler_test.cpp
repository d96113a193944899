#include "engine/grad_scaler.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <limits>

using namespace revkit;

TEST_CASE("loss scaling: scaled loss, unscaled gradients, halved on overflow, doubled after good steps") {
  GradScaler scaler(true, 1024.0, /*growth_interval=*/3);
  at::Tensor w = at::ones({2}).requires_grad_(true);
  scaler.scale((w * 3).sum()).backward();
  CHECK(w.grad().equal(at::full({2}, 3072.0)));
  CHECK(scaler.unscale({w}));
  CHECK(w.grad().equal(at::full({2}, 3.0)));
  scaler.update(true);
  scaler.update(true);
  CHECK(scaler.value() == 1024.0);
  scaler.update(true);  // the third good step in a row
  CHECK(scaler.value() == 2048.0);
  CHECK(scaler.good_steps() == 0);

  w.mutable_grad() = at::tensor({1.0f, std::numeric_limits<float>::infinity()});
  CHECK_FALSE(scaler.unscale({w}));
  scaler.update(false);
  CHECK(scaler.value() == 1024.0);

  scaler.restore(8.0, 2);
  CHECK(scaler.value() == 8.0);
  scaler.update(true);
  CHECK(scaler.value() == 16.0);
}

TEST_CASE("a disabled scaler changes nothing") {
  GradScaler scaler(false);
  at::Tensor w = at::ones({1}).requires_grad_(true);
  scaler.scale(w.sum() * 2).backward();
  CHECK(w.grad().item<float>() == 2.0f);
  w.mutable_grad() = at::full({1}, std::numeric_limits<float>::quiet_NaN());
  CHECK(scaler.unscale({w}));  // not its business
  scaler.update(false);
  CHECK(scaler.value() == 65536.0);
}
