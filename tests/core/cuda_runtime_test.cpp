#include "core/cuda_runtime.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>
#include <string>

#include "core/device.h"

using namespace revkit;

namespace {

bool mapped(const std::string& library) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(library) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("the CUDA runtime: loaded once, with LibTorch's CUDA library, and LibTorch's own answers") {
  const CudaRuntime* cuda = cuda_runtime();
  CHECK(cuda_runtime() == cuda);
#ifdef REVKIT_TEST_WITH_CUDA
  REQUIRE(cuda);
  CHECK(mapped("libtorch_cuda.so"));
  CHECK(mapped("librevkit_cuda.so"));
  // LibTorch's real CUDA hooks answer (its stand-in without libtorch_cuda throws here).
  const long runtime = at::detail::getCUDAHooks().versionCUDART();
  CHECK(cuda->version() == fmt::format("{}.{}", runtime / 1000, runtime % 1000 / 10));
  CHECK(cuda->device_count() == static_cast<int>(at::getNumGPUs()));
#else
  CHECK(cuda == nullptr);
  CHECK(!mapped("libtorch_cuda.so"));
#endif
}

TEST_CASE("first in a fresh process: LibTorch's CUDA library is mapped only once CUDA is wanted" * doctest::skip()) {
  CHECK(!mapped("libtorch_cuda.so"));
  CHECK(parse_device("cpu") == c10::Device(c10::kCPU));
  // CPU work that does not ask about CUDA (a backward would: LibTorch's autograd engine asks on its first run)
  at::Tensor x = at::ones({4});
  CHECK((x * x).sum().item<float>() == 4.0f);
  CHECK(!mapped("libtorch_cuda.so"));
  const CudaRuntime* cuda = cuda_runtime();
#ifdef REVKIT_TEST_WITH_CUDA
  REQUIRE(cuda);
  CHECK(mapped("libtorch_cuda.so"));
  CHECK_NOTHROW((void)at::detail::getCUDAHooks().versionCUDART());
#else
  CHECK(cuda == nullptr);
#endif
}

TEST_CASE("first in a fresh process: CUDA asked about before the module loads is our error, not 'no GPU'" *
          doctest::skip()) {
  at::manual_seed(0);  // asks LibTorch how many GPUs it has, which it then answers for good
#ifdef REVKIT_TEST_WITH_CUDA
  CHECK_THROWS_WITH_AS(cuda_runtime(), doctest::Contains("CUDA was queried before LibTorch's CUDA library was loaded"),
                       std::logic_error);
#else
  CHECK(cuda_runtime() == nullptr);
#endif
}
