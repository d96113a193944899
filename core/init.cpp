#include "core/init.h"

#include <ATen/ATen.h>

namespace revkit::init {

void trunc_normal_(at::Tensor tensor, double mean, double std, double a, double b) {
  TORCH_CHECK(a < b && std > 0, "trunc_normal_: need a < b and std > 0, got [", a, ", ", b, "] and ", std);
  at::NoGradGuard no_grad;
  // Rejection sampling: draw normal, redraw what falls outside [a, b]. Exact for any bounds, and fast for
  // the usual ones (with std 0.02 and bounds +-2, nothing is ever redrawn).
  tensor.normal_(mean, std);
  for (int round = 0; round < 1000; ++round) {
    at::Tensor outside = (tensor < a).logical_or_(tensor > b);
    if (!outside.any().item<bool>()) return;
    tensor.masked_scatter_(outside, at::empty({outside.sum().item<int64_t>()}, tensor.options()).normal_(mean, std));
  }
  tensor.clamp_(a, b);  // bounds that leave almost no mass: give up redrawing
}

}  // namespace revkit::init
