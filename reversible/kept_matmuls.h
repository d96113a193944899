#pragma once
// Kept matrix products: a point between recomputing a column and keeping all of it. A reversible cell's backward
// runs its level again to rebuild the activations its gradients need, and in ConvNeXt-style levels most of that
// time goes to the pointwise layers' matrix products, while their outputs are a small part of the level's
// activations. A level that runs its linear layers through reversible::linear lets a cell keep those outputs from
// its forward pass (ColumnOptions::keep_matmuls): the recompute then takes them back instead of multiplying again,
// and still builds the graph that gives the input, weight and bias their gradients. Only contracting products are
// kept (no more outputs than inputs, as ConvNeXt's second pointwise layer): the ones that save the most
// multiplication per byte kept.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace revkit::reversible {

// y = x W^T + b over the last dimension of x, as at::linear. Inside a cell that keeps its matrix products, the
// forward pass keeps y and the recompute returns it again, when W has no more rows than columns; everywhere else
// this is revkit::fused_linear (oneDNN's product where it can run it, else at::linear).
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// The outputs one cell's reversible::linear calls produced in its forward pass, in call order.
struct KeptMatmuls {
  std::vector<at::Tensor> outputs;
  std::vector<int64_t> versions;  // each output's version when kept: an in-place change later is an error
  double ms = 0.0;                // time spent in the products while recorded with timing (cost measurement)

  int64_t bytes() const;
  void clear() { *this = KeptMatmuls(); }
};

namespace detail {
// What reversible::linear does on this thread: record, replay, or neither (both null).
struct MatmulScope {
  KeptMatmuls* record = nullptr;        // recording into this, or
  const KeptMatmuls* replay = nullptr;  // replaying from this
  size_t next = 0;                      // the next output to replay
  bool timed = false;
};

// Puts a scope on this thread for the guard's lifetime and the previous one back on exit: the guards below.
class MatmulScopeGuard {
 public:
  MatmulScopeGuard(const MatmulScopeGuard&) = delete;
  MatmulScopeGuard& operator=(const MatmulScopeGuard&) = delete;

 protected:
  explicit MatmulScopeGuard(const MatmulScope& scope);
  ~MatmulScopeGuard();
  MatmulScope scope_;

 private:
  MatmulScope* previous_;
};
}  // namespace detail

// Within its scope on this thread, reversible::linear computes as usual and appends each output to `into`. With
// `timed`, each product is timed (synchronizing its device around it) into into.ms.
class RecordMatmulsGuard : detail::MatmulScopeGuard {
 public:
  explicit RecordMatmulsGuard(KeptMatmuls& into, bool timed = false)
      : MatmulScopeGuard({&into, nullptr, 0, timed}) {}
};

// Within its scope on this thread, the n-th reversible::linear call returns the n-th kept output instead of
// computing it (with autograd on, through a node whose backward is the linear layer's). finish() checks that the
// level asked for every kept output: a level must run the same computation in its recompute as in its forward.
class ReplayMatmulsGuard : detail::MatmulScopeGuard {
 public:
  explicit ReplayMatmulsGuard(const KeptMatmuls& from) : MatmulScopeGuard({nullptr, &from, 0, false}) {}
  void finish(int64_t column, int64_t level) const;
};

// Within its scope on this thread, reversible::linear neither records nor replays, whatever scope is outside.
class NoMatmulScopeGuard : detail::MatmulScopeGuard {
 public:
  NoMatmulScopeGuard() : MatmulScopeGuard({}) {}
};

}  // namespace revkit::reversible
