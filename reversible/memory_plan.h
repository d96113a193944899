#pragma once
// Auto mode's memory plan: for each column, store its states, keep its internals (no recompute) or rebuild its
// states by the inverse, whether it keeps its matrix products' outputs (a cheaper recompute), and how many upper
// levels every recomputed column keeps, so that the grid's activation memory stays under a budget with the least
// recompute. The costs it weighs are measured on the model itself, the first two samples of the real input, and
// scale with the input's size.
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "reversible/reversible_function.h"

namespace revkit::reversible {

// What each cell of a grid costs, measured on one input (ColumnCosts::scaled for another size).
struct ColumnCosts {
  template <typename T>
  using PerCell = std::vector<std::vector<T>>;  // [column][level]
  int64_t input_bytes = 0;         // x, which a reversible forward keeps
  PerCell<int64_t> state_bytes;    // its state c_k[j]
  PerCell<int64_t> kept_bytes;     // what plain autograd holds after its forward, its state included
  PerCell<double> forward_ms;      // its forward, which a recompute repeats
  PerCell<double> inverse_ms;      // rebuilding the previous column's state of its level from its own
  PerCell<int64_t> matmul_bytes;   // its reversible::linear outputs (ColumnOptions::keep_matmuls)
  PerCell<double> matmul_ms;       // the time of those products, which a recompute keeping them skips
  // The largest cell's forward and backward with autograd on: what a recompute and its backward need at once,
  // beyond its parameters' gradients.
  int64_t cell_peak_bytes = 0;
  // The largest cell's backward beyond the internals it reads and its parameters' gradients (the input's
  // gradients, workspace): what a kept cell's backward adds at its peak.
  int64_t backward_peak_bytes = 0;
  // The largest cell's parameter gradients, which a backward allocates before adding them to .grad: the one cost
  // that does not grow with the input.
  int64_t gradient_bytes = 0;
  int64_t input_numel = 0;  // of the input measured on

  int64_t columns() const { return static_cast<int64_t>(state_bytes.size()); }
  int64_t levels() const { return state_bytes.empty() ? 0 : static_cast<int64_t>(state_bytes.front().size()); }
  // The costs for an input of `numel` elements: activations and times grow with the batch and the pixels (measure
  // again for another picture size: a convolution's workspace need not).
  ColumnCosts scaled(int64_t numel) const;
};

// Runs one plain forward and backward of each cell, one cell's graph at a time, on x, and times and counts them.
// The caller's RNG stream and the levels' buffers are left as they were; no gradient is accumulated into any
// parameter.
ColumnCosts measure_column_costs(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options);

struct MemoryPlan {
  int64_t keep_columns = 0;      // as ColumnOptions
  int64_t store_every = 1;       // as ColumnOptions: 1 stores every column, 0 only the last recomputed one
  int64_t keep_matmuls = 0;      // as ColumnOptions
  int64_t keep_levels = 0;       // as ColumnOptions
  int64_t activation_bytes = 0;  // predicted peak of the grid's activations in a training step
  double recompute_ms = 0.0;     // predicted time a step spends beyond plain autograd's
  std::string describe(int64_t columns) const;
};

// The prediction for one plan.
MemoryPlan predict(const ColumnCosts& costs, int64_t keep_columns, int64_t store_every, int64_t keep_matmuls = 0,
                   int64_t keep_levels = 0);

// Every plan considered: each number of kept columns 0..N, each with every store_every the drift allows
// (`max_store_every` as choose_store_every returns it: 0 allows any chain of inverses), every number of
// recomputed columns that keep their matrix products and every number of kept levels 0..L-1. From the most memory
// to the least.
std::vector<MemoryPlan> candidate_plans(const ColumnCosts& costs, int64_t max_store_every);

// The plan with the least recompute whose activation memory fits `budget_bytes` (ties: the least memory); the plan
// with the least memory when none fits.
MemoryPlan choose_plan(const ColumnCosts& costs, int64_t budget_bytes, int64_t max_store_every);

// The budget Auto mode plans under without one given: half of what `device` has available, leaving the rest of
// the step (the layers outside the grid, the optimizer) its room.
int64_t default_memory_budget(c10::Device device);

}  // namespace revkit::reversible
