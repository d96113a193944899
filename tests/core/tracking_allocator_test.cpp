#include "core/tracking_allocator.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "gpu.h"

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

TEST_CASE("without a GPU the CUDA statistics are a clear error, and synchronising the CPU is nothing") {
  synchronize(c10::kCPU);
  if (!at::hasCUDA()) CHECK_THROWS(cuda_allocated_bytes(0));
}

REVKIT_GPU_TEST_CASE("GPU: the activation meter reads the CUDA caching allocator") {
  REQUIRE(at::hasCUDA());
  const c10::Device cuda(c10::kCUDA, 0);
  at::Tensor kept = at::empty({1 << 20}, at::TensorOptions(at::kFloat).device(cuda));  // held before: not counted
  ActivationMeter meter(cuda);
  {
    at::Tensor a = at::empty({1 << 20}, at::TensorOptions(at::kFloat).device(cuda));   // 4 MiB
    at::Tensor b = at::empty({1 << 19}, at::TensorOptions(at::kDouble).device(cuda));  // 4 MiB
  }
  at::Tensor c = at::empty({1 << 18}, at::TensorOptions(at::kFloat).device(cuda));  // 1 MiB, reusing a's block
  CHECK(meter.peak_bytes() == 8 << 20);
  CHECK(meter.held_at_start() >= 4 << 20);
}
