#pragma once
// LibTorch's CUDA half (libtorch_cuda with cuBLAS, cuDNN and NCCL) is loaded on first use, through the revkit_cuda
// module (cuda/runtime.cpp): a run on the CPU never maps it, which saves about 350 MB of resident memory and
// 0.2 s of start-up in every process (BENCHMARKS.md, "LibTorch's CUDA half on demand"). revkit's own CUDA entry
// points (parse_device, build_info, the CUDA memory statistics, NCCL) load it; a program that links LibTorch's
// `torch` target has it from the start.
//
// LibTorch answers its first CUDA question once and for all (at::hasCUDA, at::manual_seed and the first backward
// ask one), so the module must be loaded before any of them when CUDA is wanted: cuda_runtime() checks this and
// fails loudly rather than report no GPU.
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace c10d {
class Backend;
class Store;
}  // namespace c10d

namespace revkit {

// What revkit asks of CUDA. Device indices are >= 0.
class CudaRuntime {
 public:
  virtual ~CudaRuntime() = default;
  // The CUDA runtime of LibTorch, "13.0".
  virtual std::string version() const = 0;
  // Visible devices; 0 without a driver or a GPU.
  virtual int device_count() const = 0;
  // "NVIDIA H200, 139.8 GiB".
  virtual std::string describe(c10::DeviceIndex device) const = 0;
  virtual c10::DeviceIndex current_device() const = 0;
  virtual void set_device(c10::DeviceIndex device) const = 0;
  virtual void synchronize(c10::DeviceIndex device) const = 0;
  // The caching allocator's bytes in tensors: now, and the peak since the last reset_peak.
  virtual int64_t allocated_bytes(c10::DeviceIndex device) const = 0;
  virtual int64_t peak_allocated_bytes(c10::DeviceIndex device) const = 0;
  virtual void reset_peak(c10::DeviceIndex device) const = 0;
  // The device's free memory plus what the caching allocator holds unused.
  virtual int64_t available_bytes(c10::DeviceIndex device) const = 0;
  // Whether LibTorch has NCCL and this build found its header.
  virtual bool has_nccl() const = 0;
  // A process group of NCCL for CUDA tensors; TORCH_CHECK error without NCCL.
  virtual c10::intrusive_ptr<c10d::Backend> nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                       int world_size, std::chrono::milliseconds timeout) const = 0;
};

// The loaded module's runtime, loading it on the first call; nullptr when this build has no CUDA (its LibTorch
// has none). A module that is missing or fails to load is an error of the installation (std::runtime_error).
const CudaRuntime* cuda_runtime();

}  // namespace revkit
