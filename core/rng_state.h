#pragma once
// Capture and restore of random-number-generator state, so a recomputation draws the same dropout and
// drop-path masks as the forward pass did, and the caller's stream is left as it was.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace revkit {

// The CUDA devices that the given tensors live on, without duplicates, in ascending order.
std::vector<int> cuda_devices_of(at::ArrayRef<at::Tensor> tensors);

// State of the CPU generator and of the default generator of each listed CUDA device.
class RngState {
 public:
  RngState() = default;
  static RngState capture(const std::vector<int>& cuda_devices = {});
  void restore() const;
  bool empty() const { return !cpu_.defined(); }
  // Same generator states (byte for byte) on the same devices.
  bool operator==(const RngState& other) const;
  // As named byte tensors ("rng.cpu", "rng.cuda.<device>"), for checkpoints, and back.
  std::map<std::string, at::Tensor> to_tensors() const;
  static RngState from_tensors(const std::map<std::string, at::Tensor>& tensors);

 private:
  at::Tensor cpu_;
  std::vector<int> cuda_devices_;
  std::vector<at::Tensor> cuda_;
};

// Forks the RNG streams for a scope: whatever the scope draws, the state is put back on exit.
class RngForkGuard {
 public:
  explicit RngForkGuard(const std::vector<int>& cuda_devices = {}) : saved_(RngState::capture(cuda_devices)) {}
  ~RngForkGuard() { saved_.restore(); }
  RngForkGuard(const RngForkGuard&) = delete;
  RngForkGuard& operator=(const RngForkGuard&) = delete;

 private:
  RngState saved_;
};

}  // namespace revkit
