#pragma once
// The activation memory of a training step, as the memory tests measure it: loss = sum_k mean(o_k^2) over the
// outputs of `forward`, one step first (so that parameter gradients exist, as in training), then the tracking
// allocator's peak over a second step minus what was held before it.
#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "core/memory_meter.h"

namespace revkit::testing {

inline void training_step(const std::function<std::vector<at::Tensor>()>& forward) {
  at::Tensor loss = at::zeros({});
  for (const auto& o : forward()) loss = loss + o.pow(2).mean();
  loss.backward();
}

inline int64_t step_activation_bytes(const std::function<std::vector<at::Tensor>()>& forward) {
  training_step(forward);
  ActivationMeter meter;
  training_step(forward);
  return meter.peak_bytes();
}

}  // namespace revkit::testing
