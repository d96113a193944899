#include "core/memory_meter.h"

#include <cstdio>

#include "core/cpu_allocator.h"

#ifdef REVKIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace revkit {

ActivationMeter::ActivationMeter(c10::Device device) : device_(device) {
  if (device_.is_cuda()) {
    synchronize(device_);
    reset_cuda_peak(device_.index());
    start_ = cuda_allocated_bytes(device_.index());
    return;
  }
  CpuAllocator::install();
  CpuAllocator::reset_peak();
  start_ = CpuAllocator::current_bytes();
}

int64_t ActivationMeter::peak_bytes() const {
  if (!device_.is_cuda()) return CpuAllocator::peak_bytes() - start_;
  synchronize(device_);
  return cuda_peak_allocated_bytes(device_.index()) - start_;
}

int64_t allocated_bytes(c10::Device device) {
  if (device.is_cuda()) return cuda_allocated_bytes(device.index());
  CpuAllocator::install();
  return CpuAllocator::current_bytes();
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
