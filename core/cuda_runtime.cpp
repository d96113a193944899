#include "core/cuda_runtime.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace revkit {

namespace {

#ifdef REVKIT_CUDA_MODULE
// The module lies next to the library holding this code (lib/ once installed, the build's core/ folder before).
std::string module_path() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&cuda_runtime), &info) == 0 || !info.dli_fname)
    throw std::runtime_error("revkit: cannot tell where its own library lies, to load " REVKIT_CUDA_MODULE);
  std::string path = info.dli_fname;
  const auto slash = path.rfind('/');
  return (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + REVKIT_CUDA_MODULE;
}

const CudaRuntime* load() {
  const std::string path = module_path();
  // Global: the CUDA libraries are LibTorch's for everyone in the process (plugins included), not only ours.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) throw std::runtime_error(fmt::format("revkit: cannot load its CUDA module: {}", dlerror()));
  using Entry = const CudaRuntime* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, "revkit_cuda_runtime"));
  if (!entry) throw std::runtime_error(fmt::format("revkit: {} has no revkit_cuda_runtime", path));
  // Asked about CUDA before the module was loaded, LibTorch would have settled on "no CUDA" for good.
  try {
    (void)at::detail::getCUDAHooks().versionCUDART();
  } catch (const std::exception&) {
    throw std::logic_error(
        "revkit: CUDA was queried before LibTorch's CUDA library was loaded; call revkit::cuda_runtime() first");
  }
  return entry();
}
#else
const CudaRuntime* load() { return nullptr; }
#endif

}  // namespace

const CudaRuntime* cuda_runtime() {
  static const CudaRuntime* const runtime = load();
  return runtime;
}

}  // namespace revkit
