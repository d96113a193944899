#pragma once
// Devices as users name them on the command line.
#include <c10/core/Device.h>

#include <string>

namespace revkit {

// The device named by "cpu", "cuda" or "cuda:N"; InputError when unknown or not available.
c10::Device parse_device(const std::string& text);

}  // namespace revkit
