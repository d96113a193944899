// The revkit_cuda module: revkit's CUDA runtime (core/cuda_runtime.h) over LibTorch's CUDA libraries, which it
// links. core/cuda_runtime.cpp loads it when CUDA is first wanted.
#include <ATen/cuda/CUDAContextLight.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#if defined(REVKIT_WITH_NCCL) && defined(USE_C10D_NCCL)
#define REVKIT_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "core/cuda_runtime.h"

namespace revkit {
namespace {

const c10::CachingAllocator::Stat& allocated_stat(const c10::CachingDeviceAllocator::DeviceStats& stats) {
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
}

class LibTorchCuda final : public CudaRuntime {
 public:
  std::string version() const override {
    const long v = at::detail::getCUDAHooks().versionCUDART();
    return fmt::format("{}.{}", v / 1000, v % 1000 / 10);
  }
  int device_count() const override { return static_cast<int>(c10::cuda::device_count()); }
  std::string describe(c10::DeviceIndex device) const override {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(device);
    return fmt::format("{}, {:.1f} GiB", p->name, p->totalGlobalMem / 1073741824.0);
  }
  c10::DeviceIndex current_device() const override { return c10::cuda::current_device(); }
  void set_device(c10::DeviceIndex device) const override { c10::cuda::set_device(device); }
  void synchronize(c10::DeviceIndex device) const override {
    c10::cuda::CUDAGuard guard(device);
    c10::cuda::device_synchronize();
  }
  int64_t allocated_bytes(c10::DeviceIndex device) const override {
    return allocated_stat(c10::cuda::CUDACachingAllocator::getDeviceStats(device)).current;
  }
  int64_t peak_allocated_bytes(c10::DeviceIndex device) const override {
    return allocated_stat(c10::cuda::CUDACachingAllocator::getDeviceStats(device)).peak;
  }
  void reset_peak(c10::DeviceIndex device) const override { c10::cuda::CUDACachingAllocator::resetPeakStats(device); }
  int64_t available_bytes(c10::DeviceIndex device) const override {
    c10::cuda::CUDAGuard guard(device);
    size_t free = 0, total = 0;
    C10_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device);
    const auto& reserved = stats.reserved_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)];
    return static_cast<int64_t>(free) + reserved.current - allocated_stat(stats).current;
  }
  bool has_nccl() const override {
#ifdef REVKIT_NCCL
    return true;
#else
    return false;
#endif
  }
  c10::intrusive_ptr<c10d::Backend> nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                                               std::chrono::milliseconds timeout) const override {
#ifdef REVKIT_NCCL
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world_size, options);
#else
    TORCH_CHECK(false, "this build of revkit has no NCCL");
#endif
  }
};

}  // namespace
}  // namespace revkit

extern "C" __attribute__((visibility("default"))) const revkit::CudaRuntime* revkit_cuda_runtime() {
  static const revkit::LibTorchCuda runtime;
  return &runtime;
}
