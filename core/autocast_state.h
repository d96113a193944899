#pragma once
// Capture and restore of the thread-local autocast state, and scopes that behave like PyTorch's autocast context
// manager. The autograd engine runs backward on its own threads (and, on CPU, with the state of the thread that
// called backward), so a recomputation must put back the state its forward pass saw.
#include <c10/core/ScalarType.h>

namespace revkit {

struct AutocastState {
  bool cpu_enabled = false;
  c10::ScalarType cpu_dtype = c10::kBFloat16;
  bool cuda_enabled = false;
  c10::ScalarType cuda_dtype = c10::kHalf;
  bool cache_enabled = true;  // reuse one low-precision cast of each weight within a region

  static AutocastState current();
  void apply() const;
  bool enabled() const { return cpu_enabled || cuda_enabled; }
  // The same state without the cache of casts.
  AutocastState without_cache() const {
    AutocastState s = *this;
    s.cache_enabled = false;
    return s;
  }
  bool operator==(const AutocastState& o) const {
    return cpu_enabled == o.cpu_enabled && cpu_dtype == o.cpu_dtype && cuda_enabled == o.cuda_enabled &&
           cuda_dtype == o.cuda_dtype && cache_enabled == o.cache_enabled;
  }
};

// Sets a state for a scope and puts the previous one back on exit. Guards nest as PyTorch's autocast regions do:
// when the outermost one exits, autocast's cache of weight casts is cleared, so that the next region (the next
// training step) casts the weights as they are then, not as they were when first cast.
class AutocastStateGuard {
 public:
  explicit AutocastStateGuard(const AutocastState& state);
  ~AutocastStateGuard();
  AutocastStateGuard(const AutocastStateGuard&) = delete;
  AutocastStateGuard& operator=(const AutocastStateGuard&) = delete;

 private:
  AutocastState previous_;
};

// Turns autocast's cache of casts off for a scope. Code that runs weights without grad inside an autocast region
// (a reversible forward, a drift check) must not leave casts that have no path to the weights for a later use
// with grad to pick up; and a recompute inside backward must not reuse them.
class AutocastCacheOffGuard {
 public:
  AutocastCacheOffGuard();
  ~AutocastCacheOffGuard();
  AutocastCacheOffGuard(const AutocastCacheOffGuard&) = delete;
  AutocastCacheOffGuard& operator=(const AutocastCacheOffGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace revkit
