#include "core/memory_meter.h"

#include <cstdio>

#include "core/cpu_allocator.h"
#include "core/cuda_runtime.h"

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

namespace {
const CudaRuntime& runtime() {
  const CudaRuntime* r = cuda_runtime();
  TORCH_CHECK(r, "this build of revkit has no CUDA (its LibTorch has none)");
  return *r;
}
c10::DeviceIndex index_or_current(c10::DeviceIndex device) { return device < 0 ? runtime().current_device() : device; }
}  // namespace

int64_t cuda_allocated_bytes(c10::DeviceIndex device) { return runtime().allocated_bytes(index_or_current(device)); }
int64_t cuda_peak_allocated_bytes(c10::DeviceIndex device) {
  return runtime().peak_allocated_bytes(index_or_current(device));
}
void reset_cuda_peak(c10::DeviceIndex device) { runtime().reset_peak(index_or_current(device)); }
int64_t cuda_available_bytes(c10::DeviceIndex device) { return runtime().available_bytes(index_or_current(device)); }
void synchronize(c10::Device device) {
  if (device.is_cuda()) runtime().synchronize(index_or_current(device.index()));
}

}  // namespace revkit
