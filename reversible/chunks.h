#pragma once
// Chunked recompute: below the floor of one level's working set. A reversible cell's backward recomputes its whole
// level F with autograd on, so every activation inside F exists at once. A level that runs its blocks through
// run_in_chunks instead keeps, during that recompute, only the input of each of n pieces; each piece is run again
// when its gradient is needed. One more forward of the level per backward buys a working set of one piece.
#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/sequential.h>

#include <cstdint>

namespace revkit::reversible {

// Runs `blocks` on x: in n checkpointed pieces of consecutive blocks while a reversible cell recomputes its level
// with ColumnOptions::recompute_chunks() = n > 1 and autograd on; as a plain sequence everywhere else.
at::Tensor run_in_chunks(torch::nn::Sequential& blocks, const at::Tensor& x);

// The piece count run_in_chunks uses on this thread (1 outside a recompute).
int64_t recompute_chunks();

// Sets the piece count for the recompute in a scope on this thread; the previous count comes back on exit.
class RecomputeChunksGuard {
 public:
  explicit RecomputeChunksGuard(int64_t chunks);
  ~RecomputeChunksGuard();
  RecomputeChunksGuard(const RecomputeChunksGuard&) = delete;
  RecomputeChunksGuard& operator=(const RecomputeChunksGuard&) = delete;

 private:
  int64_t previous_;
};

}  // namespace revkit::reversible
