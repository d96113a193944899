#include "core/device.h"

#include <ATen/Context.h>
#include <fmt/format.h>

#include "core/error.h"

namespace revkit {

c10::Device parse_device(const std::string& text) {
  if (text == "cpu") return c10::kCPU;
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!at::hasCUDA())
      throw InputError(fmt::format("--device {}: this build of LibTorch has no CUDA device available", text));
    return text == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(text);
  }
  throw InputError(fmt::format("--device must be cpu, cuda or cuda:N, got '{}'", text));
}

}  // namespace revkit
