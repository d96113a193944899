#include "core/device.h"

#include <fmt/format.h>

#include <charconv>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace revkit {

c10::Device parse_device(const std::string& text) {
  if (text == "cpu") return c10::kCPU;
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    const CudaRuntime* cuda = cuda_runtime();
    if (!cuda || cuda->device_count() == 0)
      throw InputError(fmt::format(
          "--device {}: no CUDA device is available (none is visible, or LibTorch was built without CUDA)", text));
    if (text == "cuda") return c10::Device(c10::kCUDA, 0);
    const std::string index = text.substr(5);
    int n = -1;
    const auto [end, error] = std::from_chars(index.data(), index.data() + index.size(), n);
    if (error != std::errc() || end != index.data() + index.size() || index.empty() || n < 0)
      throw InputError(fmt::format("--device must be cpu, cuda or cuda:N, got '{}'", text));
    const int count = cuda->device_count();
    if (n >= count)
      throw InputError(fmt::format("--device {}: there {} {} CUDA device{}", text, count == 1 ? "is" : "are", count,
                                   count == 1 ? "" : "s"));
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(n));
  }
  throw InputError(fmt::format("--device must be cpu, cuda or cuda:N, got '{}'", text));
}

}  // namespace revkit
