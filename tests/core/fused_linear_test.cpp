#include "core/fused_linear.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <doctest/doctest.h>

#include <cstring>

namespace {

// Counts the calls of oneDNN's fused linear made on this thread while it lives.
class FusedCalls {
 public:
  FusedCalls() {
    handle_ = at::addThreadLocalCallback(at::RecordFunctionCallback(&on_start).needsInputs(false));
    count_ = 0;
  }
  ~FusedCalls() { at::removeCallback(handle_); }
  int count() const { return count_; }

 private:
  static std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
    if (std::strcmp(fn.name(), "mkldnn::_linear_pointwise") == 0) ++count_;
    return nullptr;
  }
  static thread_local int count_;
  at::CallbackHandle handle_;
};
thread_local int FusedCalls::count_ = 0;

double relative(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

}  // namespace

TEST_CASE("fused linear without autograd: one oneDNN call, equal to at::linear and at::gelu to float rounding") {
  at::manual_seed(0);
  const at::Tensor x = at::randn({2, 5, 7, 16}), w = at::randn({24, 16}) * 0.25, b = at::randn({24});
  const at::Tensor expected = at::linear(x, w, b);
  at::NoGradGuard no_grad;
  FusedCalls calls;
  const at::Tensor y = revkit::fused_linear(x, w, b);
  const at::Tensor g = revkit::fused_linear_gelu(x, w, b);
  const at::Tensor no_bias = revkit::fused_linear_gelu(x, w);
  CHECK(calls.count() == 3);
  CHECK(y.sizes() == expected.sizes());
  CHECK(relative(y, expected) < 1e-6);
  CHECK(relative(g, at::gelu(expected)) < 1e-6);
  CHECK(relative(no_bias, at::gelu(at::linear(x, w))) < 1e-6);
  // The erf form, not tanh's: the two differ by about 1e-3 near x = -2.
  const at::Tensor at_minus_two = revkit::fused_linear_gelu(at::full({1, 1}, -2.0), at::ones({1, 1}));
  CHECK(at_minus_two.item<double>() ==
        doctest::Approx(-2.0 * 0.5 * (1.0 + std::erf(-2.0 / std::sqrt(2.0)))).epsilon(1e-6));
}

TEST_CASE("fused linear where autograd records, or outside float32 on the CPU: at::linear and at::gelu themselves") {
  at::manual_seed(0);
  at::Tensor x = at::randn({4, 8}), w = at::randn({6, 8}).requires_grad_(true), b = at::randn({6});
  FusedCalls calls;
  const at::Tensor y = revkit::fused_linear_gelu(x, w, b);
  CHECK(y.requires_grad());
  CHECK(at::equal(y, at::gelu(at::linear(x, w, b))));
  y.sum().backward();
  CHECK(w.grad().defined());
  {
    at::NoGradGuard no_grad;
    const at::Tensor xd = x.to(at::kDouble), wd = w.detach().to(at::kDouble), bd = b.to(at::kDouble);
    CHECK(at::equal(revkit::fused_linear(xd, wd, bd), at::linear(xd, wd, bd)));
    CHECK(at::equal(revkit::fused_linear(x.reshape({-1}).narrow(0, 0, 8), w.detach()),
                    at::linear(x.reshape({-1}).narrow(0, 0, 8), w.detach())));  // one dimension
    // Under autocast the product runs in its cast dtype, as at::linear's.
    at::autocast::set_autocast_enabled(c10::DeviceType::CPU, true);
    const at::Tensor cast = revkit::fused_linear(x, w.detach(), b);
    at::autocast::set_autocast_enabled(c10::DeviceType::CPU, false);
    at::autocast::clear_cache();
    CHECK(std::string(c10::toString(cast.scalar_type())) == "BFloat16");
  }
  CHECK(calls.count() == 0);
}
