#pragma once
// Test cases that need a GPU: in doctest's "gpu" suite and skipped by the per-file CTest entries; the gpu/ CTest
// entries run them (tests/gpu_or_skip.sh), and CTest lists those as Skipped where no GPU is present.
#include <doctest/doctest.h>

#define REVKIT_GPU_TEST_CASE(name) TEST_CASE(name* doctest::test_suite("gpu") * doctest::skip())
