#pragma once
// A copy of some buffers (BatchNorm's running statistics, ...) to put back later: a recompute or a check run
// must not move them.
#include <ATen/core/Tensor.h>

#include <vector>

namespace revkit {

class BufferSnapshot {
 public:
  BufferSnapshot() = default;
  explicit BufferSnapshot(std::vector<at::Tensor> buffers);
  // Writes the saved values back into the same tensors, in place (their version counters move).
  void restore() const;

 private:
  std::vector<at::Tensor> buffers_, saved_;
};

// Restores a snapshot of `buffers` when the scope ends.
class BufferRestoreGuard {
 public:
  explicit BufferRestoreGuard(std::vector<at::Tensor> buffers) : snapshot_(std::move(buffers)) {}
  ~BufferRestoreGuard() { snapshot_.restore(); }
  BufferRestoreGuard(const BufferRestoreGuard&) = delete;
  BufferRestoreGuard& operator=(const BufferRestoreGuard&) = delete;

 private:
  BufferSnapshot snapshot_;
};

}  // namespace revkit
