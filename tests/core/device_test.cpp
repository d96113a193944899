#include "core/device.h"

#include <ATen/Context.h>
#include <doctest/doctest.h>

#include "core/error.h"

using namespace revkit;

TEST_CASE("devices by name: cpu always, cuda only when there is one, anything else an error") {
  CHECK(parse_device("cpu") == c10::Device(c10::kCPU));
  if (at::hasCUDA()) {
    CHECK(parse_device("cuda") == c10::Device(c10::kCUDA, 0));
    CHECK(parse_device("cuda:0") == c10::Device(c10::kCUDA, 0));
    CHECK_THROWS_WITH_AS(parse_device("cuda:x"), "--device must be cpu, cuda or cuda:N, got 'cuda:x'", InputError);
    CHECK_THROWS_WITH_AS(parse_device("cuda:-1"), "--device must be cpu, cuda or cuda:N, got 'cuda:-1'", InputError);
    CHECK_THROWS_WITH_AS(parse_device("cuda:999"), doctest::Contains("--device cuda:999: there"), InputError);
  } else {
    CHECK_THROWS_WITH_AS(parse_device("cuda"), doctest::Contains("--device cuda: no CUDA device is available"),
                         InputError);
  }
  CHECK_THROWS_WITH_AS(parse_device("gpu"), "--device must be cpu, cuda or cuda:N, got 'gpu'", InputError);
}
