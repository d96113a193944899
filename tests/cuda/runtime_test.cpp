#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <regex>

#include "core/cuda_runtime.h"
#include "gpu.h"

using namespace revkit;

#ifdef REVKIT_TEST_WITH_CUDA
TEST_CASE("LibTorch's CUDA: its runtime version and the devices this machine has") {
  const CudaRuntime* cuda = cuda_runtime();
  REQUIRE(cuda);
  CHECK(std::regex_match(cuda->version(), std::regex("[0-9]+\\.[0-9]")));
  CHECK(cuda->device_count() == static_cast<int>(at::getNumGPUs()));
}
#endif

REVKIT_GPU_TEST_CASE("GPU: the runtime names the device, counts its tensors and synchronises") {
  const CudaRuntime* cuda = cuda_runtime();
  REQUIRE(cuda);
  REQUIRE(cuda->device_count() > 0);
  CHECK(std::regex_match(cuda->describe(0), std::regex(".+, [0-9]+\\.[0-9] GiB")));
  cuda->set_device(0);
  CHECK(cuda->current_device() == 0);
  const int64_t before = cuda->allocated_bytes(0);
  cuda->reset_peak(0);
  {
    at::Tensor t = at::empty({1 << 20}, at::TensorOptions(at::kFloat).device(c10::Device(c10::kCUDA, 0)));  // 4 MiB
    CHECK(cuda->allocated_bytes(0) - before == 4 << 20);
    t.fill_(1.0f);
    cuda->synchronize(0);
    CHECK(cuda->available_bytes(0) > 0);
  }
  CHECK(cuda->allocated_bytes(0) == before);
  CHECK(cuda->peak_allocated_bytes(0) - before == 4 << 20);
  CHECK(cuda->has_nccl());
}
