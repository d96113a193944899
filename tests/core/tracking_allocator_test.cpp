#include "core/tracking_allocator.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

using namespace revkit;

TEST_CASE("tracking allocator: current and peak bytes follow CPU tensors") {
  TrackingAllocator::install();
  TrackingAllocator::install();  // idempotent
  CHECK(TrackingAllocator::installed());
  const int64_t start = TrackingAllocator::current_bytes();
  ActivationMeter meter;
  {
    at::Tensor a = at::empty({1 << 20}, at::kFloat);  // 4 MiB
    CHECK(TrackingAllocator::current_bytes() - start == 4 << 20);
    {
      at::Tensor b = at::empty({1 << 19}, at::kDouble);  // 4 MiB more
      CHECK(TrackingAllocator::current_bytes() - start == 8 << 20);
    }
    CHECK(TrackingAllocator::current_bytes() - start == 4 << 20);
  }
  CHECK(TrackingAllocator::current_bytes() == start);
  CHECK(meter.peak_bytes() == 8 << 20);
  TrackingAllocator::reset_peak();
  CHECK(TrackingAllocator::peak_bytes() == start);
}
