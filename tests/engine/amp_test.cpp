#include "engine/amp.h"

#include <doctest/doctest.h>

using namespace revkit;

TEST_CASE("--amp: bf16 autocast on the CPU, fp16 with loss scaling on CUDA, the caller's state otherwise") {
  const AmpPolicy cpu = AmpPolicy::choose(true, c10::kCPU);
  CHECK((cpu.dtype == c10::kBFloat16));
  CHECK_FALSE(cpu.needs_loss_scaling());
  const AutocastState s = cpu.autocast();
  CHECK(s.cpu_enabled);
  CHECK((s.cpu_dtype == c10::kBFloat16));
  CHECK_FALSE(s.cuda_enabled);

  const AmpPolicy cuda = AmpPolicy::choose(true, c10::Device(c10::kCUDA, 0));
  CHECK((cuda.dtype == c10::kHalf));
  CHECK(cuda.needs_loss_scaling());
  CHECK(cuda.autocast().cuda_enabled);
  CHECK_FALSE(cuda.autocast().cpu_enabled);

  const AmpPolicy off = AmpPolicy::choose(false, c10::Device(c10::kCUDA, 0));
  CHECK_FALSE(off.needs_loss_scaling());
  CHECK((off.autocast() == AutocastState::current()));  // parenthesised: doctest cannot print the state
}
