#include "core/compat.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>

#include "core/error.h"

namespace revkit::compat {
namespace {
void check_autocast_device(c10::DeviceType t) {
  TORCH_CHECK(t == c10::DeviceType::CPU || t == c10::DeviceType::CUDA,
              "autocast state is tracked for CPU and CUDA, got device type ", t);
}
}  // namespace

#if REVKIT_TORCH_AT_LEAST(2, 4)
bool autocast_enabled(c10::DeviceType t) {
  check_autocast_device(t);
  return at::autocast::is_autocast_enabled(t);
}
void set_autocast_enabled(c10::DeviceType t, bool enabled) {
  check_autocast_device(t);
  at::autocast::set_autocast_enabled(t, enabled);
}
c10::ScalarType autocast_dtype(c10::DeviceType t) {
  check_autocast_device(t);
  return at::autocast::get_autocast_dtype(t);
}
void set_autocast_dtype(c10::DeviceType t, c10::ScalarType dtype) {
  check_autocast_device(t);
  at::autocast::set_autocast_dtype(t, dtype);
}
#else
bool autocast_enabled(c10::DeviceType t) {
  check_autocast_device(t);
  return t == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void set_autocast_enabled(c10::DeviceType t, bool enabled) {
  check_autocast_device(t);
  if (t == c10::DeviceType::CPU)
    at::autocast::set_cpu_enabled(enabled);
  else
    at::autocast::set_enabled(enabled);
}
c10::ScalarType autocast_dtype(c10::DeviceType t) {
  check_autocast_device(t);
  return t == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_autocast_dtype(c10::DeviceType t, c10::ScalarType dtype) {
  check_autocast_device(t);
  if (t == c10::DeviceType::CPU)
    at::autocast::set_autocast_cpu_dtype(dtype);
  else
    at::autocast::set_autocast_gpu_dtype(dtype);
}
#endif

bool autocast_cache_enabled() { return at::autocast::is_autocast_cache_enabled(); }
void set_autocast_cache_enabled(bool enabled) { at::autocast::set_autocast_cache_enabled(enabled); }

at::Generator default_generator(c10::Device device) { return at::globalContext().defaultGenerator(device); }

int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

}  // namespace revkit::compat
