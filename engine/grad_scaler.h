#pragma once
// Dynamic loss scaling for fp16 training, as PyTorch's GradScaler does it: the loss is multiplied by the scale
// before backward so that small gradients do not underflow; before a step the gradients are divided by it and
// checked. A step with an inf or NaN gradient is skipped and the scale halves; after `growth_interval` good
// steps in a row it doubles. Disabled, every call is a no-op.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace revkit {

class GradScaler {
 public:
  explicit GradScaler(bool enabled, double initial_scale = 65536.0, int64_t growth_interval = 2000);

  bool enabled() const { return enabled_; }
  at::Tensor scale(const at::Tensor& loss) const;
  // Divides every defined gradient of `parameters` by the scale; true when all of them are finite.
  bool unscale(const std::vector<at::Tensor>& parameters) const;
  // After each optimizer step: `finite` is what unscale returned (the step was taken or skipped).
  void update(bool finite);

  double value() const { return scale_; }
  int64_t good_steps() const { return good_steps_; }
  // Continues from a saved scale and count (a resumed run).
  void restore(double scale, int64_t good_steps);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
};

}  // namespace revkit
