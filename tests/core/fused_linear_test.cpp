#include "core/fused_linear.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <doctest/doctest.h>
#include <torch/autograd.h>

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
  const at::Tensor strided = x.transpose(1, 2);  // not contiguous
  CHECK(relative(revkit::fused_linear(strided, w, b), at::linear(strided, w, b)) < 1e-6);
  CHECK(calls.count() == 4);
  CHECK(y.sizes() == expected.sizes());
  CHECK(relative(y, expected) < 1e-6);
  CHECK(relative(g, at::gelu(expected)) < 1e-6);
  CHECK(relative(no_bias, at::gelu(at::linear(x, w))) < 1e-6);
  // The erf form, not tanh's: the two differ by about 1e-3 near x = -2.
  const at::Tensor at_minus_two = revkit::fused_linear_gelu(at::full({1, 1}, -2.0), at::ones({1, 1}));
  CHECK(at_minus_two.item<double>() ==
        doctest::Approx(-2.0 * 0.5 * (1.0 + std::erf(-2.0 / std::sqrt(2.0)))).epsilon(1e-6));
}

TEST_CASE("fused linear where autograd records: oneDNN's product with at::linear's backward, double backward too") {
  at::manual_seed(0);
  const at::Tensor x0 = at::randn({2, 3, 8}), w0 = at::randn({6, 8}), b0 = at::randn({6}), g = at::randn({2, 3, 6});
  // The gradients of sum(g * gelu(x W^T + b)), and of the sum of their squares (a second derivative), each way.
  auto derivatives = [&](bool fused) {
    at::Tensor x = x0.clone().requires_grad_(true), w = w0.clone().requires_grad_(true),
               b = b0.clone().requires_grad_(true);
    const at::Tensor y = fused ? revkit::fused_linear_gelu(x, w, b) : at::gelu(at::linear(x, w, b));
    auto first = torch::autograd::grad({(y * g).sum()}, {x, w, b}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    at::Tensor penalty = first[0].square().sum() + first[1].square().sum() + first[2].square().sum();
    auto second = torch::autograd::grad({penalty}, {x, w, b});
    return std::vector<at::Tensor>{y.detach(), first[0], first[1], first[2], second[0], second[1], second[2]};
  };
  const auto expected = derivatives(false);
  FusedCalls calls;
  const auto fused = derivatives(true);
  CHECK(calls.count() == 1);
  // In-place changes of the output are allowed, as of at::linear's.
  at::Tensor w = w0.clone().requires_grad_(true);
  at::Tensor y = revkit::fused_linear(x0, w);
  y.mul_(2).sum().backward();
  CHECK(relative(w.grad(), 2 * at::ones({2 * 3, 6}).t().mm(x0.reshape({-1, 8}))) < 1e-6);
  for (size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(relative(fused[i], expected[i]) < 1e-5);
  }
}

TEST_CASE("fused linear outside float32 on the CPU, or under autocast: at::linear itself") {
  at::manual_seed(0);
  const at::Tensor x = at::randn({4, 8}), w = at::randn({6, 8}), b = at::randn({6});
  at::NoGradGuard no_grad;
  FusedCalls calls;
  const at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble), bd = b.to(at::kDouble);
  CHECK(at::equal(revkit::fused_linear(xd, wd, bd), at::linear(xd, wd, bd)));
  CHECK(at::equal(revkit::fused_linear_gelu(xd, wd, bd), at::gelu(at::linear(xd, wd, bd))));
  const at::Tensor flat = x.reshape({-1}).narrow(0, 0, 8);  // one dimension
  CHECK(at::equal(revkit::fused_linear(flat, w), at::linear(flat, w)));
  // Under autocast the product runs in its cast dtype, as at::linear's.
  at::autocast::set_autocast_enabled(c10::DeviceType::CPU, true);
  const at::Tensor cast = revkit::fused_linear(x, w, b);
  at::autocast::set_autocast_enabled(c10::DeviceType::CPU, false);
  at::autocast::clear_cache();
  CHECK(std::string(c10::toString(cast.scalar_type())) == "BFloat16");
  CHECK(calls.count() == 0);
}
