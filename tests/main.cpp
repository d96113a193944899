#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "core/cuda_runtime.h"

// The tests make CUDA tensors and ask at::hasCUDA() directly, so they load LibTorch's CUDA half first, as a program
// linking LibTorch's `torch` target has it. REVKIT_TESTS_LAZY_CUDA=1 leaves it to revkit, for the cases that check
// the loading itself (tests/core/cuda_runtime_test.cpp, each first in a fresh process).
int main(int argc, char** argv) {
  const char* lazy = std::getenv("REVKIT_TESTS_LAZY_CUDA");
  if (!lazy || std::string(lazy) != "1") revkit::cuda_runtime();
  doctest::Context context(argc, argv);
  return context.run();
}
