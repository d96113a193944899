#include "core/build_info.h"

#include <doctest/doctest.h>
#include <torch/version.h>

using namespace revkit;

TEST_CASE("build info: revkit's and LibTorch's versions, CUDA and the GPUs it sees") {
  const BuildInfo info = build_info();
  CHECK(info.revkit_version == "0.1.0");
  CHECK(info.libtorch_version == std::string(TORCH_VERSION).substr(0, info.libtorch_version.size()));
  const std::string text = format_build_info(info);
  CHECK(text.rfind("revkit 0.1.0\nLibTorch " + info.libtorch_version + "\nCUDA ", 0) == 0);
  MESSAGE(text);
  CHECK(format_build_info({"1.2.3", "2.11.0", "", {}}) == "revkit 1.2.3\nLibTorch 2.11.0\nCUDA no\n");
  CHECK(format_build_info({"1.2.3", "2.11.0", "13.0", {}}) == "revkit 1.2.3\nLibTorch 2.11.0\nCUDA 13.0, 0 GPUs\n");
  CHECK(format_build_info({"1", "2", "13.0", {"cuda:0 A, 80.0 GiB", "cuda:1 B, 80.0 GiB"}}) ==
        "revkit 1\nLibTorch 2\nCUDA 13.0, 2 GPUs: cuda:0 A, 80.0 GiB; cuda:1 B, 80.0 GiB\n");
}
