#include "engine/amp.h"

namespace revkit {

AmpPolicy AmpPolicy::choose(bool amp, c10::Device device) {
  AmpPolicy p;
  p.enabled = amp;
  p.device = device;
  p.dtype = device.is_cuda() ? c10::kHalf : c10::kBFloat16;
  return p;
}

AutocastState AmpPolicy::autocast() const {
  AutocastState s = AutocastState::current();
  if (!enabled) return s;
  if (device.is_cuda()) {
    s.cuda_enabled = true;
    s.cuda_dtype = dtype;
  } else {
    s.cpu_enabled = true;
    s.cpu_dtype = dtype;
  }
  return s;
}

}  // namespace revkit
