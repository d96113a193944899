#include "reversible/memory_plan.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/autograd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "core/autocast_state.h"
#include "core/buffer_snapshot.h"
#include "core/memory_meter.h"
#include "core/rng_state.h"
#include "reversible/grid_sweep.h"
#include "reversible/kept_matmuls.h"

namespace revkit::reversible {
namespace {

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

ColumnCosts ColumnCosts::scaled(int64_t numel) const {
  TORCH_CHECK(input_numel > 0, "ColumnCosts::scaled: no costs were measured");
  const double r = static_cast<double>(numel) / static_cast<double>(input_numel);
  auto bytes = [r](int64_t b) { return static_cast<int64_t>(std::llround(static_cast<double>(b) * r)); };
  ColumnCosts c = *this;
  c.input_numel = numel;
  c.input_bytes = bytes(input_bytes);
  c.cell_peak_bytes = bytes(cell_peak_bytes);
  c.backward_peak_bytes = bytes(backward_peak_bytes);
  for (auto* cells : {&c.state_bytes, &c.kept_bytes, &c.matmul_bytes})
    for (auto& column : *cells)
      for (auto& b : column) b = bytes(b);
  for (auto* cells : {&c.forward_ms, &c.inverse_ms, &c.matmul_ms})
    for (auto& column : *cells)
      for (auto& t : column) t *= r;
  return c;
}

ColumnCosts measure_column_costs(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options) {
  detail::check_grid(grid);
  AutocastCacheOffGuard no_cache;  // the casts of a throw-away graph stay out of autocast's cache
  at::AutoGradMode grad_on(true);
  const c10::Device device = x.device();
  const int64_t N = grid.columns(), L = grid.num_levels();
  clamp_alphas(grid, options.alpha_floor());
  RngForkGuard rng_fork(cuda_devices_of(x));
  BufferRestoreGuard keep_buffers(detail::grid_buffers(grid));

  ColumnCosts costs;
  costs.input_numel = x.numel();
  costs.input_bytes = static_cast<int64_t>(x.nbytes());
  // Each cell on detached inputs that require grad, as in a training step: its graph is its own and goes when the
  // cell is done, so the probe holds one cell's activations at a time.
  auto input = [](const at::Tensor& t) { return t.defined() ? t.detach().requires_grad_(true) : at::Tensor(); };
  std::vector<at::Tensor> state;
  for (auto* cells : {&costs.state_bytes, &costs.kept_bytes, &costs.matmul_bytes})
    cells->assign(N, std::vector<int64_t>(L, 0));
  for (auto* cells : {&costs.forward_ms, &costs.inverse_ms, &costs.matmul_ms})
    cells->assign(N, std::vector<double>(L, 0.0));
  for (int64_t j = 0; j < N; ++j) {
    std::vector<at::Tensor> next(L);
    for (int64_t k = 0; k < L; ++k) {
      const at::Tensor lower = input(k == 0 ? x : next[k - 1]);
      const at::Tensor upper = input(j > 0 && k + 1 < L ? state[k + 1] : at::Tensor());
      const at::Tensor previous = input(j > 0 ? state[k] : at::Tensor());
      const at::Tensor& alpha = grid.alphas[j][k];
      synchronize(device);
      ActivationMeter meter(device);  // the peak above what was held before the cell
      const int64_t before = allocated_bytes(device);
      auto start = std::chrono::steady_clock::now();
      at::Tensor f;
      KeptMatmuls matmuls;  // what the cell would keep: counted, then let go
      {
        RecordMatmulsGuard record(matmuls);
        f = grid.levels[j][k]->forward(lower, upper);
      }
      at::Tensor out = detail::combine(j, k, f, alpha, previous);
      synchronize(device);
      costs.forward_ms[j][k] = milliseconds_since(start);
      if (previous.defined()) {
        at::NoGradGuard no_grad;
        start = std::chrono::steady_clock::now();
        at::Tensor rebuilt = (out.detach() - f.detach()) / alpha;
        synchronize(device);
        costs.inverse_ms[j][k] = milliseconds_since(start);
      }
      f = at::Tensor();
      const int64_t cell_kept = allocated_bytes(device) - before;  // the cell's graph and its output
      costs.kept_bytes[j][k] = cell_kept;
      std::vector<at::Tensor> wrt = {lower};
      for (const auto& t : {upper, previous, alpha})
        if (t.defined() && t.requires_grad()) wrt.push_back(t);
      int64_t gradients = 0;
      for (const auto& p : grid.levels[j][k]->parameters())
        if (p.requires_grad()) {
          wrt.push_back(p);
          gradients += static_cast<int64_t>(p.nbytes());
        }
      torch::autograd::grad({out}, wrt, {at::ones_like(out)}, /*retain_graph=*/false, /*create_graph=*/false,
                            /*allow_unused=*/true);
      const int64_t peak = std::max<int64_t>(meter.peak_bytes() - gradients, 0);
      costs.cell_peak_bytes = std::max(costs.cell_peak_bytes, peak);
      costs.backward_peak_bytes = std::max(costs.backward_peak_bytes, std::max<int64_t>(peak - cell_kept, 0));
      costs.gradient_bytes = std::max(costs.gradient_bytes, gradients);
      if (matmuls.bytes() > 0 && options.recompute_chunks() <= 1) {
        // The products' time from a forward of their own, synchronized around each product, so that the
        // synchronizations stay out of forward_ms (and its memory out of the cell's peak).
        at::NoGradGuard no_grad;
        KeptMatmuls timed;
        RecordMatmulsGuard record(timed, /*timed=*/true);
        grid.levels[j][k]->forward(lower, upper);
        costs.matmul_bytes[j][k] = matmuls.bytes();
        costs.matmul_ms[j][k] = std::min(timed.ms, costs.forward_ms[j][k]);
      }
      matmuls.clear();
      next[k] = out.detach();
      costs.state_bytes[j][k] = static_cast<int64_t>(next[k].nbytes());
    }
    state = std::move(next);
  }
  return costs;
}

std::string MemoryPlan::describe(int64_t columns) const {
  ColumnOptions o(MemoryMode::Full);
  o.keep_columns(keep_columns).store_every(store_every).keep_matmuls(keep_matmuls);
  int64_t kept = 0, stored = 0, rebuilt = 0;
  for (ColumnRole role : column_roles(o, columns))
    (role == ColumnRole::Kept ? kept : role == ColumnRole::Stored ? stored : rebuilt) += 1;
  const auto matmuls = matmul_columns(o, columns);
  return fmt::format(
      "{} kept, {} stored, {} rebuilt by the inverse, {} keeping their matrix products, {} upper levels kept in "
      "each recomputed column (predicted {:.1f} MB, {:.0f} ms of recompute)",
      kept, stored, rebuilt, std::count(matmuls.begin(), matmuls.end(), true), keep_levels,
      activation_bytes / 1048576.0, recompute_ms);
}

MemoryPlan predict(const ColumnCosts& costs, int64_t keep_columns, int64_t store_every, int64_t keep_matmuls,
                   int64_t keep_levels) {
  const int64_t N = costs.columns(), L = costs.levels();
  MemoryPlan plan;
  plan.keep_columns = keep_columns;
  plan.store_every = store_every;
  plan.keep_matmuls = keep_matmuls;
  plan.keep_levels = keep_levels;
  const ColumnOptions options = ColumnOptions(MemoryMode::Full)
                                    .keep_columns(keep_columns)
                                    .store_every(store_every)
                                    .keep_matmuls(keep_matmuls)
                                    .keep_levels(keep_levels);
  const int64_t first_kept = first_kept_level(options, L);
  const auto roles = column_roles(options, N);
  const auto matmuls = matmul_columns(options, N);
  // Costs built by hand may leave the products out.
  auto measured = [&](int64_t j, int64_t k) {
    return j < static_cast<int64_t>(std::min(costs.matmul_bytes.size(), costs.matmul_ms.size())) &&
           k < static_cast<int64_t>(std::min(costs.matmul_bytes[j].size(), costs.matmul_ms[j].size()));
  };
  // `kept`: the kept columns' internals; `held`: the kept levels' in the recomputed columns; `held_before_last`:
  // those of the recomputed columns before the last. `top_states` and `top_states_before`: the kept levels' states
  // of the last recomputed column and of the one before it.
  int64_t states = costs.input_bytes, kept = 0, held = 0, held_before_last = 0, top_states = 0, top_states_before = 0;
  bool recomputes = false;
  for (int64_t j = 0; j < N; ++j) {
    if (roles[j] != ColumnRole::Kept) {
      held_before_last = held;
      top_states_before = std::exchange(top_states, 0);
    }
    for (int64_t k = 0; k < L; ++k) {
      // Every level kept is plain autograd.
      if (roles[j] == ColumnRole::Kept || first_kept == 0) {
        kept += costs.kept_bytes[j][k];
        continue;
      }
      if (k >= first_kept) {
        held += costs.kept_bytes[j][k];  // its state included, and no recompute
        top_states += costs.state_bytes[j][k];
        continue;
      }
      recomputes = true;
      plan.recompute_ms += costs.forward_ms[j][k];
      if (roles[j] == ColumnRole::Stored) {
        states += costs.state_bytes[j][k];
      } else {
        plan.recompute_ms += costs.inverse_ms[j + 1][k];  // rebuilt by column j + 1's inverse
        // The first kept level above takes this state as its lower input, and its graph holds it all the same.
        if (k + 1 == first_kept && first_kept < L) states += costs.state_bytes[j][k];
      }
      // Held from the column's forward to its cells' backward, as the states are; its recompute skips them.
      if (matmuls[j] && measured(j, k)) {
        states += costs.matmul_bytes[j][k];
        plan.recompute_ms -= costs.matmul_ms[j][k];
      }
    }
  }
  // The kept columns' backward runs first, with everything held and a cell's backward on top; it frees their
  // internals as it goes. Then each recomputed column in turn from the last, its kept levels first (the engine runs
  // the latest node that is ready): a recompute finds every stored state, and the kept levels' internals of the
  // columns before its own. The last recomputed column's recompute comes first and finds the most, and with them
  // its own kept levels' outputs (the grid's outputs, which a caller may hold through backward) and the gradients
  // that wait for the previous column's (they come from this column's cells, and go when those kept cells run).
  const int64_t recompute_peak = states + held_before_last + top_states + top_states_before + costs.cell_peak_bytes;
  plan.activation_bytes = costs.gradient_bytes + std::max(states + kept + held + costs.backward_peak_bytes,
                                                          recomputes ? recompute_peak : int64_t{0});
  return plan;
}

std::vector<MemoryPlan> candidate_plans(const ColumnCosts& costs, int64_t max_store_every) {
  const int64_t N = costs.columns();
  // Only a grid whose levels run reversible::linear has matrix products to keep.
  bool has_matmuls = false;
  for (const auto& column : costs.matmul_bytes)
    for (int64_t b : column) has_matmuls |= b > 0;
  std::vector<MemoryPlan> plans;
  for (int64_t keep = 0; keep <= N; ++keep) {
    const int64_t recomputed = N - keep;
    if (recomputed == 0) {
      plans.push_back(predict(costs, keep, 1));
      continue;
    }
    // store_every s stores every s-th column back from the last recomputed one, so chains of at most s - 1
    // inverses; s >= the recomputed count stores only that last one, as 0 does.
    const int64_t largest = max_store_every == 0 ? recomputed : std::min(max_store_every, recomputed);
    for (int64_t s = 1; s <= largest; ++s)
      for (int64_t m = 0; m <= (has_matmuls ? recomputed : 0); ++m)
        for (int64_t levels = 0; levels < costs.levels(); ++levels)
          plans.push_back(predict(costs, keep, s == recomputed ? 0 : s, m, levels));
  }
  std::stable_sort(plans.begin(), plans.end(),
                   [](const MemoryPlan& a, const MemoryPlan& b) { return a.activation_bytes > b.activation_bytes; });
  return plans;
}

MemoryPlan choose_plan(const ColumnCosts& costs, int64_t budget_bytes, int64_t max_store_every) {
  const auto plans = candidate_plans(costs, max_store_every);
  TORCH_CHECK(!plans.empty(), "choose_plan: a grid without columns");
  const MemoryPlan* best = nullptr;
  for (const auto& p : plans) {
    if (p.activation_bytes > budget_bytes) continue;
    if (!best || p.recompute_ms < best->recompute_ms ||
        (p.recompute_ms == best->recompute_ms && p.activation_bytes < best->activation_bytes))
      best = &p;
  }
  return best ? *best : plans.back();
}

int64_t default_memory_budget(c10::Device device) { return available_bytes(device) / 2; }

}  // namespace revkit::reversible
