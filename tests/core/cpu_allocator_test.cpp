#include "core/cpu_allocator.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

using namespace revkit;

namespace {
constexpr int64_t MiB = 1 << 20;
}

TEST_CASE("CPU allocator: current and peak bytes follow CPU tensors") {
  CpuAllocator::install();
  CpuAllocator::install();  // idempotent
  CHECK(CpuAllocator::installed());
  const int64_t start = CpuAllocator::current_bytes();
  CpuAllocator::reset_peak();
  {
    at::Tensor a = at::empty({1 << 20}, at::kFloat);  // 4 MiB
    CHECK(CpuAllocator::current_bytes() - start == 4 * MiB);
    {
      at::Tensor b = at::empty({1 << 19}, at::kDouble);  // 4 MiB more
      CHECK(CpuAllocator::current_bytes() - start == 8 * MiB);
      at::Tensor small = at::empty({10}, at::kFloat);  // from malloc, counted all the same
      CHECK(CpuAllocator::current_bytes() - start == 8 * MiB + 40);
    }
    CHECK(CpuAllocator::current_bytes() - start == 4 * MiB);
  }
  CHECK(CpuAllocator::current_bytes() == start);
  CHECK(CpuAllocator::peak_bytes() - start == 8 * MiB + 40);
  CpuAllocator::reset_peak();
  CHECK(CpuAllocator::peak_bytes() == start);
}

TEST_CASE("CPU allocator: a freed large block serves the next request of about its size, 64-byte aligned") {
  CpuAllocator::install();
  CpuAllocator::release_cached();
  void* first = nullptr;
  {
    at::Tensor a = at::empty({MiB}, at::kFloat);  // 4 MiB
    first = a.data_ptr();
    CHECK(reinterpret_cast<uintptr_t>(first) % 64 == 0);
  }
  const CpuAllocatorStats freed = CpuAllocator::stats();
  CHECK(freed.cached >= 4 * MiB);
  {
    at::Tensor b = at::empty({MiB - 100000}, at::kFloat);  // 10% smaller: the same block
    CHECK(b.data_ptr() == first);
    CHECK(CpuAllocator::stats().reused == freed.reused + 1);
    CHECK(CpuAllocator::stats().cached == freed.cached - (4 * MiB + 4096));
    at::Tensor c = at::empty({MiB / 2}, at::kFloat);  // half the size: not worth the waste, a block of its own
    CHECK(c.data_ptr() != first);
    CHECK(CpuAllocator::stats().fresh == freed.fresh + 1);
  }
}

TEST_CASE("CPU allocator: the mapped total stays within an eighth above the peak in use") {
  CpuAllocator::install();
  CpuAllocator::release_cached();
  const int64_t base = CpuAllocator::stats().mapped;  // blocks held by tensors outside this test
  const int64_t resized = CpuAllocator::stats().resized;
  // Blocks of growing sizes, each freed before the next: a cache that kept them all would map 1 + 2 + ... + 20
  // MiB = 210 MiB; one bounded by the peak in use (20 MiB) maps at most 22.5 MiB plus a page per block.
  for (int64_t mb = 1; mb <= 20; ++mb) {
    at::Tensor t = at::empty({mb * MiB}, at::kByte);
    t.fill_(1);  // touched: resident, as in a real step
    CHECK(CpuAllocator::stats().mapped - base <= 20 * MiB + 20 * MiB / 8 + 20 * 4096);
  }
  CHECK(CpuAllocator::stats().mapped - base >= 20 * MiB);  // the largest stays cached
  CHECK(CpuAllocator::stats().resized > resized);           // at the bound, cached blocks grew rather than new ones
  CpuAllocator::release_cached();
  CHECK(CpuAllocator::stats().cached == 0);
  CHECK(CpuAllocator::stats().mapped == base);
}

TEST_CASE("CPU allocator: tensor values survive reuse, and many threads allocating at once are served") {
  CpuAllocator::install();
  at::Tensor x = at::arange(1 << 20, at::kFloat);
  at::Tensor y = x * 2;  // both large: allocated and freed by LibTorch's threads inside the kernels
  CHECK(y.sum().item<double>() == doctest::Approx(2.0 * (double(1 << 20) - 1) * (1 << 20) / 2));
  at::parallel_for(0, 64, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      at::Tensor t = at::full({(i % 8 + 1) * 65536}, static_cast<float>(i));
      TORCH_CHECK(t.max().item<float>() == static_cast<float>(i));
    }
  });
  CHECK(CpuAllocator::stats().allocated >= 8 * MiB);  // x and y
}
