#include "core/cpu_allocator.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

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

TEST_CASE("CPU block cache: blocks are cut from a segment, split and merged, the best fit first") {
  CpuBlockCache cache;
  char* a = cache.allocate(4 * MiB);
  char* b = cache.allocate(4 * MiB);
  CHECK(reinterpret_cast<uintptr_t>(a) % 4096 == 0);
  CHECK(b == a + 4 * MiB);  // the rest of the first segment
  CHECK(cache.stats().segments == 1);
  CHECK(cache.stats().resident == 8 * MiB);
  cache.free(a);
  // The 4 MiB hole is the best fit for smaller requests, not the rest of the segment after b.
  char* c = cache.allocate(MiB);
  char* d = cache.allocate(3 * MiB - 100);  // rounded up to whole pages
  CHECK(c == a);
  CHECK(d == a + MiB);
  CHECK(cache.stats().reused == 3);
  cache.free(c);
  cache.free(d);
  // Merged again: one 4 MiB block.
  CHECK(cache.allocate(4 * MiB) == a);
  cache.free(a);
  cache.free(b);
  // All merged: the segment is one free block, its written pages cached.
  const CpuAllocatorStats idle = cache.stats();
  CHECK(idle.cached == 8 * MiB);
  CHECK(cache.allocate(CpuBlockCache::kSegment) == a);
  CHECK(cache.stats().mapped_segments == 1);
  cache.free(a);
  // A rest smaller than a large block stays with the block: 64 MiB less 100 KiB takes the whole segment.
  char* e = cache.allocate(CpuBlockCache::kSegment - 100 * 1024);
  CHECK(cache.stats().cached == 0);
  char* f = cache.allocate(MiB);
  CHECK(cache.stats().mapped_segments == 2);
  cache.free(e);
  cache.free(f);
}

TEST_CASE("CPU block cache: a block larger than a segment, and idle segments unmapped at the bound") {
  CpuBlockCache cache;
  char* big = cache.allocate(100 * MiB);  // a segment of its own
  CHECK(cache.stats().segments == 1);
  cache.free(big);
  CHECK(cache.allocate(90 * MiB) == big);  // fits the idle segment
  cache.free(big);
  // 120 MiB fits nowhere; keeping the idle 100 MiB would write 220 MiB for a peak of 120 in use: it goes first.
  char* bigger = cache.allocate(120 * MiB);
  CHECK(cache.stats().segments == 1);
  CHECK(cache.stats().released_segments == 1);
  CHECK(cache.stats().resident == 120 * MiB);
  cache.free(bigger);
  cache.release_idle();
  CHECK(cache.stats().segments == 0);
  CHECK(cache.stats().resident == 0);
}

TEST_CASE("CPU block cache: the pages written stay within an eighth above the peak in use") {
  CpuBlockCache cache;
  // Blocks of growing sizes, each freed before the next: a cache of exact sizes would write 1 + 2 + ... + 20 =
  // 210 MiB, or resize its blocks at a bound; cut from one segment, every block starts where the first did.
  for (int64_t mb = 1; mb <= 20; ++mb) {
    char* block = cache.allocate(mb * MiB);
    std::memset(block, 1, mb * MiB);
    CHECK(cache.stats().resident == mb * MiB);
    cache.free(block);
  }
  CHECK(cache.stats().mapped_segments == 1);
}

TEST_CASE("CPU block cache: the block alone where a segment cannot be mapped, OutOfMemoryError where nothing can") {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return;  // the sanitizers' own reservations of address space do not mix with a limit on it
#endif
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_AS, &saved) == 0);
  long pages = 0;
  std::ifstream("/proc/self/statm") >> pages;  // the address space in use, in pages
  rlimit tight = saved;
  // Room for a block of 1 MiB (and what malloc may need meanwhile), not for a segment of 64 MiB.
  tight.rlim_cur = static_cast<rlim_t>(pages) * sysconf(_SC_PAGESIZE) + 16 * MiB;
  CpuBlockCache cache;
  char* small = nullptr;
  bool out_of_memory = false;
  REQUIRE(setrlimit(RLIMIT_AS, &tight) == 0);
  try {
    small = cache.allocate(MiB);
    cache.allocate(256 * MiB);
  } catch (const c10::OutOfMemoryError&) {
    out_of_memory = true;
  }
  REQUIRE(setrlimit(RLIMIT_AS, &saved) == 0);
  CHECK(small != nullptr);
  CHECK(out_of_memory);
  CHECK(cache.stats().segments == 1);
  // Still serving once memory is there again.
  char* big = cache.allocate(256 * MiB);
  CHECK(cache.stats().segments == 2);
  cache.free(big);
  if (small) cache.free(small);
}

TEST_CASE("CPU allocator: a step's varying shapes fault no page after the first step") {
  // A step of a reversible network in column mode: a few tensors held, many of varying sizes made and dropped.
  // An exact-size cache bounded near the peak in use unmapped and faulted tens of MB in every such step.
  CpuAllocator::install();
  auto step = [] {
    std::vector<at::Tensor> held;
    for (int64_t i = 1; i <= 40; ++i) {
      at::Tensor t = at::empty({i * 64 * 1024}, at::kFloat);  // 256 KiB .. 10 MiB
      t.fill_(1.0f);
      if (i % 8 == 0) held.push_back(t);
    }
  };
  auto minor_faults = [] {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_minflt;
  };
  step();
  const long before = minor_faults();
  for (int i = 0; i < 3; ++i) step();
  // About 40 MB written per step; a few faults may come from elsewhere in the process.
  CHECK(minor_faults() - before < 256);
}

TEST_CASE("CPU allocator: tensor values survive reuse, and many threads allocating at once are served") {
  CpuAllocator::install();
  // c10's alignment, for blocks from malloc and from the cache alike.
  for (int64_t n : {int64_t{100}, int64_t{100000}, 3 * MiB + 5})
    CHECK(reinterpret_cast<uintptr_t>(at::empty({n}, at::kByte).data_ptr()) % 64 == 0);
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
