#include "reversible/chunks.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

#include <algorithm>

#include "core/autocast_state.h"
#include "core/rng_state.h"

namespace revkit::reversible {
namespace {

thread_local int64_t current_chunks = 1;

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Blocks [first, last) of a sequence, shared with the autograd node that runs them again.
struct Piece : torch::CustomClassHolder {
  torch::nn::Sequential blocks{nullptr};
  size_t first = 0, last = 0;
  RngState rng;
  std::vector<int> cuda_devices;
  AutocastState autocast;

  at::Tensor run(at::Tensor x) {
    for (auto it = blocks->begin() + first; it != blocks->begin() + last; ++it) x = it->forward(x);
    return x;
  }
  std::vector<at::Tensor> parameters() const {
    std::vector<at::Tensor> params;
    for (size_t i = first; i < last; ++i)
      for (const auto& p : blocks->ptr(i)->parameters())
        if (p.requires_grad()) params.push_back(p);
    return params;
  }
};

// A checkpoint over one piece: forward keeps only its input; backward runs the piece again with autograd on, under
// the RNG and autocast state of the first run, and returns the gradients of the input and the piece's parameters.
struct PieceFunction : public torch::autograd::Function<PieceFunction> {
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<Piece> piece, const at::Tensor& x,
                               at::TensorList /*params: inputs only so that their gradients are returned*/) {
    AutocastCacheOffGuard no_cache;  // casts made here have no grad: keep them out of autocast's cache
    piece->cuda_devices = cuda_devices_of(x);
    piece->rng = RngState::capture(piece->cuda_devices);
    piece->autocast = AutocastState::current();
    ctx->saved_data["piece"] = c10::IValue::make_capsule(piece);
    ctx->save_for_backward({x});
    return {piece->run(x)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto piece = c10::static_intrusive_pointer_cast<Piece>(ctx->saved_data["piece"].toCapsule());
    RngForkGuard fork(piece->cuda_devices);
    piece->rng.restore();
    AutocastStateGuard autocast(piece->autocast.without_cache());
    at::AutoGradMode grad_on(true);
    at::Tensor x =
        ctx->get_saved_variables()[0].detach().requires_grad_(ctx->needs_input_grad(0));  // counts tensor inputs only
    at::Tensor y = piece->run(x);
    variable_list wrt;
    if (x.requires_grad()) wrt.push_back(x);
    for (const auto& p : piece->parameters()) wrt.push_back(p);
    variable_list d = wrt.empty() || !y.requires_grad()
                          ? variable_list(wrt.size())
                          : torch::autograd::grad({y}, wrt, {grad_outputs[0]}, /*retain_graph=*/false,
                                                  /*create_graph=*/false, /*allow_unused=*/true);
    // Result layout: piece (no gradient), x, then every parameter.
    variable_list result{at::Tensor(), x.requires_grad() ? d[0] : at::Tensor()};
    result.insert(result.end(), d.begin() + (x.requires_grad() ? 1 : 0), d.end());
    return result;
  }
};

}  // namespace

int64_t recompute_chunks() { return current_chunks; }

RecomputeChunksGuard::RecomputeChunksGuard(int64_t chunks) : previous_(current_chunks) {
  current_chunks = std::max<int64_t>(chunks, 1);
}
RecomputeChunksGuard::~RecomputeChunksGuard() { current_chunks = previous_; }

at::Tensor run_in_chunks(torch::nn::Sequential& blocks, const at::Tensor& x) {
  const size_t n = blocks->size();
  const size_t chunks = std::min<size_t>(static_cast<size_t>(current_chunks), n);
  if (chunks <= 1 || !at::GradMode::is_enabled()) return blocks->forward(x);
  at::Tensor y = x;
  for (size_t c = 0; c < chunks; ++c) {
    auto piece = c10::make_intrusive<Piece>();
    piece->blocks = blocks;
    piece->first = n * c / chunks;
    piece->last = n * (c + 1) / chunks;
    const std::vector<at::Tensor> params = piece->parameters();
    y = PieceFunction::apply(piece, y, at::TensorList(params))[0];
  }
  return y;
}

}  // namespace revkit::reversible
