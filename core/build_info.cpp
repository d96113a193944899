#include "core/build_info.h"

#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/version.h>

#ifdef REVKIT_WITH_CUDA
#include <ATen/cuda/CUDAContextLight.h>
#include <cuda_runtime_api.h>
#endif

namespace revkit {

BuildInfo build_info() {
  BuildInfo info;
  info.revkit_version = REVKIT_VERSION;
  info.libtorch_version = fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
#ifdef REVKIT_WITH_CUDA
  info.cuda_version = fmt::format("{}.{}", CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
  if (at::hasCUDA()) {
    for (int64_t d = 0; d < static_cast<int64_t>(at::getNumGPUs()); ++d) {
      const cudaDeviceProp* p = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(d));
      info.gpus.push_back(fmt::format("cuda:{} {}, {:.1f} GiB", d, p->name, p->totalGlobalMem / 1073741824.0));
    }
  }
#endif
  return info;
}

std::string format_build_info(const BuildInfo& info) {
  std::string text = fmt::format("revkit {}\nLibTorch {}\n", info.revkit_version, info.libtorch_version);
  if (info.cuda_version.empty()) return text + "CUDA no\n";
  text += fmt::format("CUDA {}, {} GPU{}", info.cuda_version, info.gpus.size(), info.gpus.size() == 1 ? "" : "s");
  for (size_t i = 0; i < info.gpus.size(); ++i) text += (i == 0 ? ": " : "; ") + info.gpus[i];
  return text + "\n";
}

}  // namespace revkit
