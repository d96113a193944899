#pragma once
// The mixin every reversible model part carries: its column grid and options. Whole models switch memory mode
// with set_memory_mode(root, ...), which reaches every reversible part below root.
#include <torch/nn/module.h>

#include <functional>
#include <optional>
#include <set>

#include "reversible/memory_plan.h"
#include "reversible/reversible_function.h"

namespace revkit::reversible {

class ReversibleModule {
 public:
  virtual ~ReversibleModule() = default;
  ColumnOptions& column_options() { return options_; }
  const ColumnOptions& column_options() const { return options_; }
  const ColumnGrid& column_grid() const { return grid_; }
  // What the column grid receives for a model input (for RevCol: the stem's output).
  virtual at::Tensor column_input(const at::Tensor& model_input) = 0;

  // The next training forward reads the drift monitor (and, in Auto mode, plans again).
  void recheck_drift() {
    training_forwards_ = 0;
    planned_numel_ = -1;
  }
  // The latest drift reading (one relative error per recomputed column but the last; empty before the first).
  const std::vector<double>& last_drift() const { return last_drift_; }
  // Auto mode's latest plan, and the costs it was made from (measured on the first training forward).
  const MemoryPlan& memory_plan() const { return plan_; }
  const std::optional<ColumnCosts>& column_costs() const { return costs_; }
  // The number of elements of the input the latest plan was made for (-1 before the first): the size to scale
  // column_costs() to for that plan's alternatives.
  int64_t planned_input_numel() const { return planned_numel_; }

 protected:
  // Runs the grid; in Full and Auto modes, while training, reads the drift monitor first when one is due.
  std::vector<at::Tensor> run_columns(const at::Tensor& x);

  ColumnGrid grid_;
  ColumnOptions options_;

 private:
  friend std::vector<std::vector<double>> measure_drift(torch::nn::Module&, const std::function<void()>&);
  void check_drift(const at::Tensor& x);
  void plan_memory(const at::Tensor& x);
  bool record_input_ = false;
  at::Tensor recorded_input_;
  int64_t training_forwards_ = 0;
  std::vector<double> last_drift_;
  std::set<int64_t> warned_columns_;
  int64_t max_store_every_ = 0;  // the drift monitor's bound on chains of inverses (choose_store_every)
  std::optional<ColumnCosts> costs_;
  MemoryPlan plan_;
  int64_t planned_numel_ = -1;            // the input size plan_ was made for
  std::vector<int64_t> measured_sample_;  // the sample shape costs_ was measured on
  bool warned_budget_ = false;
};

// Auto mode's bound on chains of inverses: the largest k (1..N) such that every state rebuilt by at most k - 1
// inverses from a stored one stays within `tolerance`, judged by the drift monitor's errors (drift[j] for column j,
// rebuilt from the last column N - 1 by N - 1 - j inverses). Returned as store_every (k = N becomes 0: any chain).
int64_t choose_store_every(const std::vector<double>& drift, double tolerance);

// Sets the memory mode, store-every, kept columns, columns keeping their matrix products and kept levels of every
// ReversibleModule in root's tree, each to read the drift monitor (and in Auto mode to plan) on its next training
// forward; returns how many it found.
int set_memory_mode(torch::nn::Module& root, MemoryMode mode, int64_t store_every = 0, int64_t keep_columns = 0,
                    int64_t keep_matmuls = 0, int64_t keep_levels = 0);
// The drift monitor (reversible/drift.h) on one reversible part, for the input of that part.
std::vector<double> measure_drift(ReversibleModule& module, const at::Tensor& part_input);
// The drift monitor on every reversible part of a model, each on the column input it receives when `forward`
// runs the model (without grad): one list of per-column errors per part, in reversible_modules() order.
std::vector<std::vector<double>> measure_drift(torch::nn::Module& model, const std::function<void()>& forward);
// Every ReversibleModule in root's tree, root first.
std::vector<ReversibleModule*> reversible_modules(torch::nn::Module& root);

}  // namespace revkit::reversible
