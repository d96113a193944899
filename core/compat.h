#pragma once
// The one home of LibTorch APIs whose names changed between 1.13 (Debian) and 2.x (the pip wheel's libtorch):
// autocast state and default generators. Everything else in revkit calls these, never the versioned names.
#include <ATen/core/Generator.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

#define REVKIT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace revkit::compat {

bool autocast_enabled(c10::DeviceType device_type);
void set_autocast_enabled(c10::DeviceType device_type, bool enabled);
c10::ScalarType autocast_dtype(c10::DeviceType device_type);
void set_autocast_dtype(c10::DeviceType device_type, c10::ScalarType dtype);
bool autocast_cache_enabled();
void set_autocast_cache_enabled(bool enabled);

// The default generator of a CPU or CUDA device. Reached through ATen's hooks, so this compiles and links
// without CUDA; asking for a CUDA device on a CPU-only build throws.
at::Generator default_generator(c10::Device device);
int cuda_device_count();

}  // namespace revkit::compat
