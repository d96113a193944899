#pragma once
// Counts the floating-point operations of convolutions and linear layers run inside a scope, 2 per
// multiply-add (the convention behind published GFLOPs), by observing ATen's operator calls.
#include <cstdint>
#include <functional>

namespace revkit {

// Runs `fn` on this thread and returns 2 * (multiply-adds of every convolution and matrix product in it:
// aten::convolution, linear, addmm, mm, bmm, matmul, and oneDNN's fused linear; one inside another counts once).
int64_t count_flops(const std::function<void()>& fn);

}  // namespace revkit
