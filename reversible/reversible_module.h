#pragma once
// The mixin every reversible model part carries: its column grid and options. Whole models switch memory mode
// with set_memory_mode(root, ...), which reaches every reversible part below root.
#include <torch/nn/module.h>

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

 protected:
  std::vector<at::Tensor> run_columns(const at::Tensor& x) const { return reversible::run_columns(grid_, x, options_); }

  ColumnGrid grid_;
  ColumnOptions options_;
};

// Sets the memory mode (and store-every) of every ReversibleModule in root's tree; returns how many it found.
int set_memory_mode(torch::nn::Module& root, MemoryMode mode, int64_t store_every = 0);
// The drift monitor (reversible/drift.h) on one reversible part, for a model input.
std::vector<double> measure_drift(ReversibleModule& module, const at::Tensor& model_input);
// Every ReversibleModule in root's tree, root first.
std::vector<ReversibleModule*> reversible_modules(torch::nn::Module& root);

}  // namespace revkit::reversible
