#pragma once
// A CPU allocator that counts the bytes it hands out: current and peak. Activation memory of a step is the
// peak during the step minus the bytes held before it (see `ActivationMeter`).
#include <cstdint>

namespace revkit {

class TrackingAllocator {
 public:
  // Wraps the process's CPU allocator once; later calls do nothing. Tensors allocated before this call are not
  // counted. Safe to call from several threads.
  static void install();
  static bool installed();
  static int64_t current_bytes();
  static int64_t peak_bytes();
  // Starts a new peak measurement from the bytes held now.
  static void reset_peak();
};

// Measures the activation memory of a scope: peak bytes during it minus bytes held at its start.
class ActivationMeter {
 public:
  ActivationMeter();  // installs the tracking allocator if needed
  int64_t peak_bytes() const;
  int64_t held_at_start() const { return start_; }

 private:
  int64_t start_;
};

}  // namespace revkit
