#include "reversible/kept_matmuls.h"

#include <ATen/ATen.h>

#include <chrono>

#include "core/fused_linear.h"
#include "core/memory_meter.h"

namespace revkit::reversible {
namespace {

thread_local detail::MatmulScope* current_scope = nullptr;

at::Tensor replay(detail::MatmulScope& scope, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const KeptMatmuls& kept = *scope.replay;
  const size_t n = scope.next++;
  TORCH_CHECK(n < kept.outputs.size(), "revkit: a level's recompute ran more matrix products (", n + 1,
              ") than its forward kept (", kept.outputs.size(), "); a level must run the same computation in both");
  const at::Tensor& out = kept.outputs[n];
  TORCH_CHECK(out._version() == kept.versions[n],
              "revkit: the output of reversible::linear was modified in place in or after a reversible level's "
              "forward; a kept product is taken back by the recompute as it was computed (clone it before changing "
              "it in place)");
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = weight.size(0);
  TORCH_CHECK(out.sizes() == at::IntArrayRef(shape), "revkit: matrix product ", n, " of a level's recompute has shape ",
              at::IntArrayRef(shape), " but its forward kept ", out.sizes(),
              "; a level must run the same computation in both");
  if (!at::GradMode::is_enabled()) return at::alias(out);  // a view: whatever history it gets stays off the tape
  // Under autocast the forward multiplied in the cast dtype: the same casts here, differentiable, so that the
  // weights' gradients come back through them in their own dtype.
  const auto dtype = out.scalar_type();
  return linear_from_output(x.to(dtype), weight.to(dtype), bias.defined() ? bias.to(dtype) : at::Tensor(), out);
}

// A product is kept when its output is no wider than its input: the multiplication it saves per byte kept is its
// input width, so a contracting product (ConvNeXt's 4C -> C) saves four times what a widening one (C -> 4C) saves
// for the same bytes, and keeping a whole column is a better use of memory than keeping the widening ones (it also
// skips the recompute's other operations).
bool worth_keeping(const at::Tensor& weight) { return weight.size(0) <= weight.size(1); }

}  // namespace

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  detail::MatmulScope* scope = current_scope;
  if (scope == nullptr || (scope->record == nullptr && scope->replay == nullptr) || !worth_keeping(weight))
    return fused_linear(x, weight, bias);
  if (scope->replay != nullptr) return replay(*scope, x, weight, bias);
  KeptMatmuls& kept = *scope->record;
  if (scope->timed) synchronize(x.device());
  const auto start = std::chrono::steady_clock::now();
  at::Tensor out = fused_linear(x, weight, bias);
  if (scope->timed) {
    synchronize(x.device());
    kept.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  kept.outputs.push_back(out.detach());  // shares out's version counter: in-place changes are caught
  kept.versions.push_back(out._version());
  return out;
}

int64_t KeptMatmuls::bytes() const {
  int64_t total = 0;
  for (const auto& t : outputs) total += static_cast<int64_t>(t.nbytes());
  return total;
}

namespace detail {
MatmulScopeGuard::MatmulScopeGuard(const MatmulScope& scope) : scope_(scope), previous_(current_scope) {
  current_scope = &scope_;
}
MatmulScopeGuard::~MatmulScopeGuard() { current_scope = previous_; }
}  // namespace detail

void ReplayMatmulsGuard::finish(int64_t column, int64_t level) const {
  TORCH_CHECK(scope_.next == scope_.replay->outputs.size(), "revkit: level ", level, " of column ", column, " ran ",
              scope_.next, " matrix products in its recompute but ", scope_.replay->outputs.size(),
              " in its forward; a level must run the same computation in both");
}

}  // namespace revkit::reversible
