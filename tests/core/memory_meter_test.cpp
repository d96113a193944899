#include "core/memory_meter.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "gpu.h"

using namespace revkit;

TEST_CASE("activation meter: the peak of a scope above what was held at its start") {
  at::Tensor kept = at::empty({1 << 20}, at::kFloat);  // held before: not counted
  ActivationMeter meter;
  CHECK(meter.held_at_start() == allocated_bytes(c10::kCPU));
  {
    at::Tensor a = at::empty({1 << 20}, at::kFloat);   // 4 MiB
    at::Tensor b = at::empty({1 << 19}, at::kDouble);  // 4 MiB
  }
  at::Tensor c = at::empty({1 << 18}, at::kFloat);  // 1 MiB
  CHECK(meter.peak_bytes() == 8 << 20);
  CHECK(allocated_bytes(c10::kCPU) - meter.held_at_start() == 1 << 20);
  CHECK(available_bytes(c10::kCPU) > 0);
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
