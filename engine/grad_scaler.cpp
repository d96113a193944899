#include "engine/grad_scaler.h"

#include <ATen/ATen.h>

namespace revkit {

GradScaler::GradScaler(bool enabled, double initial_scale, int64_t growth_interval)
    : enabled_(enabled), scale_(initial_scale), growth_interval_(growth_interval) {}

at::Tensor GradScaler::scale(const at::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

bool GradScaler::unscale(const std::vector<at::Tensor>& parameters) const {
  if (!enabled_) return true;
  at::NoGradGuard no_grad;
  bool finite = true;
  for (const auto& p : parameters)
    if (p.grad().defined()) {
      p.grad().div_(scale_);
      finite = finite && at::isfinite(p.grad()).all().item<bool>();
    }
  return finite;
}

void GradScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ /= 2;
    good_steps_ = 0;
  } else if (++good_steps_ == growth_interval_) {
    scale_ *= 2;
    good_steps_ = 0;
  }
}

void GradScaler::restore(double scale, int64_t good_steps) {
  scale_ = scale;
  good_steps_ = good_steps;
}

}  // namespace revkit
