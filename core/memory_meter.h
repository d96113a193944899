#pragma once
// Memory of tensors on a device, from revkit's CPU allocator (core/cpu_allocator.h) or CUDA's caching allocator.
// Activation memory of a step is the peak during the step minus the bytes held before it (see `ActivationMeter`).
#include <c10/core/Device.h>

#include <cstdint>

namespace revkit {

// Measures the activation memory of a scope: peak bytes during it minus bytes held at its start. On the CPU it
// counts with revkit's CPU allocator (installed if needed); on a CUDA device it reads the caching allocator's
// statistics (bytes handed out to tensors, not the blocks it reserves), whose peak it resets at the start.
class ActivationMeter {
 public:
  explicit ActivationMeter(c10::Device device = c10::kCPU);
  int64_t peak_bytes() const;
  int64_t held_at_start() const { return start_; }

 private:
  c10::Device device_;
  int64_t start_;
};

// Bytes in tensors on `device` now: revkit's CPU allocator's count on the CPU (installed if needed, so tensors
// allocated before the first call are not counted), the caching allocator's on CUDA.
int64_t allocated_bytes(c10::Device device);
// Memory a step could still take on `device`: the device's free memory plus what the caching allocator holds
// unused (CUDA), or the system's MemAvailable (CPU; 0 where unknown).
int64_t available_bytes(c10::Device device);

// The CUDA caching allocator's bytes in tensors on `device`: now, and the peak since the last reset_cuda_peak.
// TORCH_CHECK errors in a build without CUDA.
int64_t cuda_allocated_bytes(c10::DeviceIndex device);
int64_t cuda_peak_allocated_bytes(c10::DeviceIndex device);
void reset_cuda_peak(c10::DeviceIndex device);
int64_t cuda_available_bytes(c10::DeviceIndex device);
// Waits for the device's work to finish (timing on CUDA needs it); nothing on the CPU.
void synchronize(c10::Device device);

}  // namespace revkit
