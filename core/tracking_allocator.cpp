#include "core/tracking_allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <atomic>
#include <cstdio>
#include <mutex>

#ifdef REVKIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace revkit {
namespace {

// Allocates through c10::alloc_cpu with a 64-byte header in front of each block that records its size, so
// the data pointer is also the deleter's context, as raw_allocate() requires.
class CountingAllocator final : public c10::Allocator {
 public:
  static constexpr size_t kHeader = 64;  // keeps c10's 64-byte alignment for the data

  c10::DataPtr allocate(size_t n) override { return allocate_block(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static std::atomic<int64_t> current;
  static std::atomic<int64_t> peak;

 private:
  static c10::DataPtr allocate_block(size_t n) {
    auto* base = static_cast<char*>(c10::alloc_cpu(n + kHeader));
    *reinterpret_cast<size_t*>(base) = n;
    const auto bytes = static_cast<int64_t>(n);
    const int64_t now = current.fetch_add(bytes) + bytes;
    int64_t seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
    void* data = base + kHeader;
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  static void release(void* data) {
    if (!data) return;
    char* base = static_cast<char*>(data) - kHeader;
    current.fetch_sub(static_cast<int64_t>(*reinterpret_cast<size_t*>(base)));
    c10::free_cpu(base);
  }
};

std::atomic<int64_t> CountingAllocator::current{0};
std::atomic<int64_t> CountingAllocator::peak{0};

std::atomic<CountingAllocator*> g_allocator{nullptr};
std::once_flag g_install_once;

}  // namespace

void TrackingAllocator::install() {
  std::call_once(g_install_once, [] {
    // Never destroyed: blocks handed out must be able to report back until the process ends.
    auto* a = new CountingAllocator();
    c10::SetCPUAllocator(a, /*priority=*/100);
    g_allocator.store(a);
  });
}

bool TrackingAllocator::installed() { return g_allocator.load() != nullptr; }

int64_t TrackingAllocator::current_bytes() {
  auto* a = g_allocator.load();
  return a ? a->current.load() : 0;
}

int64_t TrackingAllocator::peak_bytes() {
  auto* a = g_allocator.load();
  return a ? a->peak.load() : 0;
}

void TrackingAllocator::reset_peak() {
  if (auto* a = g_allocator.load()) a->peak.store(a->current.load());
}

ActivationMeter::ActivationMeter(c10::Device device) : device_(device) {
  if (device_.is_cuda()) {
    synchronize(device_);
    reset_cuda_peak(device_.index());
    start_ = cuda_allocated_bytes(device_.index());
    return;
  }
  TrackingAllocator::install();
  TrackingAllocator::reset_peak();
  start_ = TrackingAllocator::current_bytes();
}

int64_t ActivationMeter::peak_bytes() const {
  if (!device_.is_cuda()) return TrackingAllocator::peak_bytes() - start_;
  synchronize(device_);
  return cuda_peak_allocated_bytes(device_.index()) - start_;
}

int64_t allocated_bytes(c10::Device device) {
  if (device.is_cuda()) return cuda_allocated_bytes(device.index());
  TrackingAllocator::install();
  return TrackingAllocator::current_bytes();
}

int64_t available_bytes(c10::Device device) {
  if (device.is_cuda()) return cuda_available_bytes(device.index());
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  long long kilobytes = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %lld kB", &kilobytes) == 1) break;
  std::fclose(f);
  return static_cast<int64_t>(kilobytes) * 1024;
}

#ifdef REVKIT_WITH_CUDA
namespace {
const c10::CachingAllocator::Stat& allocated_stat(const c10::CachingDeviceAllocator::DeviceStats& stats) {
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
}
c10::DeviceIndex index_or_current(c10::DeviceIndex device) { return device < 0 ? c10::cuda::current_device() : device; }
}  // namespace

int64_t cuda_allocated_bytes(c10::DeviceIndex device) {
  return allocated_stat(c10::cuda::CUDACachingAllocator::getDeviceStats(index_or_current(device))).current;
}
int64_t cuda_peak_allocated_bytes(c10::DeviceIndex device) {
  return allocated_stat(c10::cuda::CUDACachingAllocator::getDeviceStats(index_or_current(device))).peak;
}
void reset_cuda_peak(c10::DeviceIndex device) {
  c10::cuda::CUDACachingAllocator::resetPeakStats(index_or_current(device));
}
int64_t cuda_available_bytes(c10::DeviceIndex device) {
  const c10::DeviceIndex index = index_or_current(device);
  c10::cuda::CUDAGuard guard(index);
  size_t free = 0, total = 0;
  C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  const auto& reserved = stats.reserved_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
  return static_cast<int64_t>(free) + reserved.current - allocated_stat(stats).current;
}
void synchronize(c10::Device device) {
  if (device.is_cuda()) c10::cuda::device_synchronize();
}
#else
namespace {
[[noreturn]] void no_cuda() { TORCH_CHECK(false, "this build of revkit has no CUDA (its LibTorch has none)"); }
}  // namespace
int64_t cuda_allocated_bytes(c10::DeviceIndex) { no_cuda(); }
int64_t cuda_peak_allocated_bytes(c10::DeviceIndex) { no_cuda(); }
void reset_cuda_peak(c10::DeviceIndex) { no_cuda(); }
int64_t cuda_available_bytes(c10::DeviceIndex) { no_cuda(); }
void synchronize(c10::Device device) {
  if (device.is_cuda()) no_cuda();
}
#endif

}  // namespace revkit
