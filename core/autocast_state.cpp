#include "core/autocast_state.h"

#include "core/compat.h"

namespace revkit {

AutocastState AutocastState::current() {
  AutocastState s;
  s.cpu_enabled = compat::autocast_enabled(c10::DeviceType::CPU);
  s.cpu_dtype = compat::autocast_dtype(c10::DeviceType::CPU);
  s.cuda_enabled = compat::autocast_enabled(c10::DeviceType::CUDA);
  s.cuda_dtype = compat::autocast_dtype(c10::DeviceType::CUDA);
  s.cache_enabled = compat::autocast_cache_enabled();
  return s;
}

void AutocastState::apply() const {
  compat::set_autocast_enabled(c10::DeviceType::CPU, cpu_enabled);
  compat::set_autocast_dtype(c10::DeviceType::CPU, cpu_dtype);
  compat::set_autocast_enabled(c10::DeviceType::CUDA, cuda_enabled);
  compat::set_autocast_dtype(c10::DeviceType::CUDA, cuda_dtype);
  compat::set_autocast_cache_enabled(cache_enabled);
}

}  // namespace revkit
