#include "core/build_info.h"

#include <fmt/format.h>
#include <torch/version.h>

#include "core/cuda_runtime.h"

namespace revkit {

BuildInfo build_info() {
  BuildInfo info;
  info.revkit_version = REVKIT_VERSION;
  info.libtorch_version = fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
  if (const CudaRuntime* cuda = cuda_runtime()) {
    info.cuda_version = cuda->version();
    for (int d = 0; d < cuda->device_count(); ++d)
      info.gpus.push_back(fmt::format("cuda:{} {}", d, cuda->describe(static_cast<c10::DeviceIndex>(d))));
  }
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
