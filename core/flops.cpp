#include "core/flops.h"

#include <ATen/record_function.h>

#include <cstring>

namespace revkit {
namespace {

thread_local int64_t* g_counter = nullptr;
thread_local int g_depth = 0;  // inside a counted op: its inner calls (matmul -> mm) are not counted again

struct Counted : at::ObserverContext {};

int64_t numel(at::IntArrayRef sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

// Multiply-adds of one operator call, or -1 when it is not one we count.
int64_t multiply_adds(const char* name, c10::ArrayRef<const c10::IValue> in) {
  auto tensor = [&](size_t i) -> const at::Tensor* {
    return i < in.size() && in[i].isTensor() ? &in[i].toTensor() : nullptr;
  };
  if (std::strcmp(name, "aten::convolution") == 0) {
    const at::Tensor *x = tensor(0), *w = tensor(1);
    if (!x || !w || in.size() < 9 || x->dim() != 4 || w->dim() != 4 || in[6].toBool()) return 0;  // 2-D, not transposed
    const auto stride = in[3].toIntVector(), padding = in[4].toIntVector(), dilation = in[5].toIntVector();
    int64_t out = x->size(0) * w->size(0);
    for (int d = 0; d < 2; ++d)
      out *= (x->size(2 + d) + 2 * padding[d] - dilation[d] * (w->size(2 + d) - 1) - 1) / stride[d] + 1;
    return out * w->size(1) * w->size(2) * w->size(3);
  }
  // oneDNN's linear with a fused output operation (core/fused_linear): a linear layer's products.
  if (std::strcmp(name, "aten::linear") == 0 || std::strcmp(name, "mkldnn::_linear_pointwise") == 0) {
    const at::Tensor *x = tensor(0), *w = tensor(1);
    return x && w ? numel(x->sizes()) * w->size(0) : 0;
  }
  if (std::strcmp(name, "aten::addmm") == 0) {
    const at::Tensor *a = tensor(1), *b = tensor(2);
    return a && b ? a->size(0) * a->size(1) * b->size(1) : 0;
  }
  if (std::strcmp(name, "aten::mm") == 0 || std::strcmp(name, "aten::bmm") == 0 ||
      std::strcmp(name, "aten::matmul") == 0) {
    const at::Tensor *a = tensor(0), *b = tensor(1);
    if (!a || !b) return 0;
    return numel(a->sizes()) * (b->dim() >= 2 ? b->size(-1) : 1);
  }
  return -1;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  if (!g_counter) return nullptr;
  const int64_t macs = multiply_adds(fn.name(), fn.inputs());
  if (macs < 0) return nullptr;
  if (g_depth++ == 0) *g_counter += 2 * macs;
  return std::make_unique<Counted>();
}

void on_end(const at::RecordFunction&, at::ObserverContext* ctx) {
  if (ctx) --g_depth;
}

}  // namespace

int64_t count_flops(const std::function<void()>& fn) {
  int64_t total = 0;
  int64_t* previous = g_counter;
  g_counter = &total;
  g_depth = 0;
  auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback(&on_start, &on_end).needsInputs(true));
  try {
    fn();
  } catch (...) {
    at::removeCallback(handle);
    g_counter = previous;
    throw;
  }
  at::removeCallback(handle);
  g_counter = previous;
  return total;
}

}  // namespace revkit
