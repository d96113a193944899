#include "core/rng_state.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

using namespace revkit;

TEST_CASE("RNG state: restore replays the same draws; the fork guard leaves the stream untouched") {
  at::manual_seed(42);
  const RngState saved = RngState::capture();
  const at::Tensor first = at::rand({5});
  const at::Tensor mask = at::empty({5}).bernoulli_(0.5);
  saved.restore();
  CHECK(at::equal(at::rand({5}), first));
  CHECK(at::equal(at::empty({5}).bernoulli_(0.5), mask));

  const RngState before = RngState::capture();
  const at::Tensor expected = at::rand({3});
  before.restore();
  {
    RngForkGuard fork;
    at::rand({100});
  }
  CHECK(at::equal(at::rand({3}), expected));
  CHECK(RngState().empty());
}

TEST_CASE("CUDA devices of CPU tensors: none") { CHECK(cuda_devices_of({at::ones({1}), at::Tensor()}).empty()); }
