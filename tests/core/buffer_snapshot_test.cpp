#include "core/buffer_snapshot.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

using namespace revkit;

TEST_CASE("buffer snapshots put the values back into the same tensors") {
  at::Tensor mean = at::zeros({3}), count = at::zeros({}, at::kLong);
  const void* storage = mean.data_ptr();
  {
    BufferRestoreGuard guard({mean, count});
    mean.add_(5);
    count.add_(1);
  }
  CHECK(mean.equal(at::zeros({3})));
  CHECK(count.item<int64_t>() == 0);
  CHECK(mean.data_ptr() == storage);  // in place: modules keep their tensors

  BufferSnapshot snapshot({mean});
  mean.fill_(2);
  snapshot.restore();
  CHECK(mean.equal(at::zeros({3})));
  BufferSnapshot().restore();  // an empty snapshot is a no-op
}
