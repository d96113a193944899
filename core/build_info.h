#pragma once
// What this build of revkit runs on, as `revkit --version` prints it: revkit's version, the LibTorch it was built
// against, whether that LibTorch has CUDA, and the GPUs it sees.
#include <string>
#include <vector>

namespace revkit {

struct BuildInfo {
  std::string revkit_version;     // "0.1.0"
  std::string libtorch_version;   // "2.11.0"
  std::string cuda_version;       // the CUDA runtime LibTorch was built with, "13.0"; empty without CUDA
  std::vector<std::string> gpus;  // one "cuda:N <name>, <memory> GiB" per visible device
};

BuildInfo build_info();
// "revkit 0.1.0\nLibTorch 2.11.0\nCUDA 13.0, 1 GPU: cuda:0 ...\n" or "...\nCUDA no\n".
std::string format_build_info(const BuildInfo& info);

}  // namespace revkit
