#pragma once
// Capture and restore of the thread-local autocast state. The autograd engine runs backward on its own threads
// (and, on CPU, with the state of the thread that called backward), so a recomputation must put back the
// state its forward pass saw.
#include <c10/core/ScalarType.h>

namespace revkit {

struct AutocastState {
  bool cpu_enabled = false;
  c10::ScalarType cpu_dtype = c10::kBFloat16;
  bool cuda_enabled = false;
  c10::ScalarType cuda_dtype = c10::kHalf;
  bool cache_enabled = true;

  static AutocastState current();
  void apply() const;
  bool operator==(const AutocastState& o) const {
    return cpu_enabled == o.cpu_enabled && cpu_dtype == o.cpu_dtype && cuda_enabled == o.cuda_enabled &&
           cuda_dtype == o.cuda_dtype && cache_enabled == o.cache_enabled;
  }
};

// Sets a state for a scope and puts the previous one back on exit.
class AutocastStateGuard {
 public:
  explicit AutocastStateGuard(const AutocastState& state) : previous_(AutocastState::current()) { state.apply(); }
  ~AutocastStateGuard() { previous_.apply(); }
  AutocastStateGuard(const AutocastStateGuard&) = delete;
  AutocastStateGuard& operator=(const AutocastStateGuard&) = delete;

 private:
  AutocastState previous_;
};

}  // namespace revkit
