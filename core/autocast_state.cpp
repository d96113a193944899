#include "core/autocast_state.h"

#include <ATen/autocast_mode.h>

namespace revkit {

AutocastState AutocastState::current() {
  AutocastState s;
  s.cpu_enabled = at::autocast::is_autocast_enabled(c10::DeviceType::CPU);
  s.cpu_dtype = at::autocast::get_autocast_dtype(c10::DeviceType::CPU);
  s.cuda_enabled = at::autocast::is_autocast_enabled(c10::DeviceType::CUDA);
  s.cuda_dtype = at::autocast::get_autocast_dtype(c10::DeviceType::CUDA);
  s.cache_enabled = at::autocast::is_autocast_cache_enabled();
  return s;
}

void AutocastState::apply() const {
  at::autocast::set_autocast_enabled(c10::DeviceType::CPU, cpu_enabled);
  at::autocast::set_autocast_dtype(c10::DeviceType::CPU, cpu_dtype);
  at::autocast::set_autocast_enabled(c10::DeviceType::CUDA, cuda_enabled);
  at::autocast::set_autocast_dtype(c10::DeviceType::CUDA, cuda_dtype);
  at::autocast::set_autocast_cache_enabled(cache_enabled);
}

AutocastStateGuard::AutocastStateGuard(const AutocastState& state) : previous_(AutocastState::current()) {
  state.apply();
  at::autocast::increment_nesting();
}

AutocastStateGuard::~AutocastStateGuard() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  previous_.apply();
}

AutocastCacheOffGuard::AutocastCacheOffGuard() : previous_(at::autocast::is_autocast_cache_enabled()) {
  at::autocast::set_autocast_cache_enabled(false);
}

AutocastCacheOffGuard::~AutocastCacheOffGuard() { at::autocast::set_autocast_cache_enabled(previous_); }

}  // namespace revkit
