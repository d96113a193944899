#include "reversible/chunks.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "backbones/revcol.h"
#include "reversible/reversible_module.h"
#include "reversible/testing.h"
#include "step_memory.h"

using namespace revkit;
using reversible::MemoryMode;

namespace {

torch::nn::Sequential dropout_stack() {
  torch::nn::Sequential s(torch::nn::Linear(4, 8), torch::nn::Dropout(0.3), torch::nn::Tanh(), torch::nn::Linear(8, 8),
                          torch::nn::Dropout(0.3), torch::nn::Linear(8, 4));
  s->to(at::kDouble);
  return s;
}

struct Grads {
  at::Tensor output, input;
  std::vector<at::Tensor> params;
  std::string node;
};

Grads run(torch::nn::Sequential& blocks, const at::Tensor& x0, int64_t chunks) {
  for (auto& p : blocks->parameters()) p.mutable_grad() = at::Tensor();
  at::manual_seed(7);
  at::Tensor x = x0.clone().requires_grad_(true);
  at::Tensor y;
  {
    reversible::RecomputeChunksGuard guard(chunks);
    y = reversible::run_in_chunks(blocks, x);
  }
  Grads g{y.detach(), {}, {}, y.grad_fn()->name()};
  (y * at::linspace(-1, 1, y.numel(), at::kDouble).view(y.sizes())).sum().backward();
  g.input = x.grad();
  for (const auto& p : blocks->parameters()) g.params.push_back(p.grad().clone());
  return g;
}

}  // namespace

TEST_CASE("blocks in checkpointed pieces: the same outputs and gradients, dropout masks replayed") {
  auto blocks = dropout_stack();
  at::Tensor x = at::randn({5, 4}, at::kDouble);
  const Grads whole = run(blocks, x, 1);
  for (int64_t chunks : {2, 3, 6, 10}) {
    INFO("chunks ", chunks);
    const Grads pieces = run(blocks, x, chunks);
    CHECK(pieces.node.find("PieceFunction") != std::string::npos);  // the pieces are autograd nodes
    CHECK(at::equal(pieces.output, whole.output));
    CHECK(at::allclose(pieces.input, whole.input, 0, 1e-14));
    REQUIRE(pieces.params.size() == whole.params.size());
    for (size_t i = 0; i < whole.params.size(); ++i) CHECK(at::allclose(pieces.params[i], whole.params[i], 0, 1e-14));
  }
  CHECK(whole.node.find("PieceFunction") == std::string::npos);
}

TEST_CASE("outside a reversible recompute, or without autograd, the blocks run as a plain sequence") {
  auto blocks = dropout_stack();
  at::Tensor x = at::randn({2, 4}, at::kDouble).requires_grad_(true);
  CHECK(reversible::recompute_chunks() == 1);
  CHECK(std::string(reversible::run_in_chunks(blocks, x).grad_fn()->name()).find("PieceFunction") == std::string::npos);
  {
    reversible::RecomputeChunksGuard guard(3);
    CHECK(reversible::recompute_chunks() == 3);
    {
      reversible::RecomputeChunksGuard inner(0);  // below one means whole
      CHECK(reversible::recompute_chunks() == 1);
    }
    CHECK(reversible::recompute_chunks() == 3);
    at::NoGradGuard no_grad;
    CHECK(!reversible::run_in_chunks(blocks, x).requires_grad());
  }
  CHECK(reversible::recompute_chunks() == 1);
}

TEST_CASE("RevCol in full mode with chunked recompute equals plain autograd, with less activation memory") {
  at::manual_seed(8);
  RevCol model(RevColOptions({8, 16, 24, 32}, {2, 2, 4, 2}, 3).drop_path(0.2).alpha_init(1.0));
  model->to(at::kDouble);
  at::Tensor x = at::randn({2, 3, 64, 64}, at::kDouble);
  reversible::ModeComparison cmp;
  cmp.mode = MemoryMode::Full;
  cmp.recompute_chunks = 2;
  const auto report = reversible::compare_memory_modes(
      *model, [&](const at::Tensor& in) { return model->forward(in); }, x, cmp);
  CHECK(report.within(1e-8));

  auto activation_bytes = [&](int64_t chunks) {
    RevCol m(RevColOptions({16, 32, 48, 64}, {2, 2, 4, 2}, 2).alpha_init(1.0).drop_path(0.0));
    reversible::set_memory_mode(*m, MemoryMode::Full);
    for (auto* part : reversible::reversible_modules(*m)) part->column_options().recompute_chunks(chunks);
    at::Tensor input = at::randn({2, 3, 128, 128});
    return testing::step_activation_bytes([&] { return m->forward(input); });
  };
  const int64_t whole = activation_bytes(1), halves = activation_bytes(2);
  INFO("whole levels ", whole, ", two pieces ", halves);
  CHECK(halves < 0.9 * whole);
}
