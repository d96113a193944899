#pragma once
// Mixed precision as training and validation use it (`--amp`): bf16 autocast on the CPU, fp16 autocast on CUDA
// (with loss scaling while training, engine/grad_scaler.h).
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "core/autocast_state.h"

namespace revkit {

struct AmpPolicy {
  bool enabled = false;
  c10::Device device = c10::kCPU;
  c10::ScalarType dtype = c10::kBFloat16;

  static AmpPolicy choose(bool amp, c10::Device device);
  // The autocast state for the model's forward pass: the caller's, with this policy's device switched on.
  AutocastState autocast() const;
  // fp16 gradients underflow without it.
  bool needs_loss_scaling() const { return enabled && dtype == c10::kHalf; }
};

}  // namespace revkit
