#pragma once
// The mixin every reversible model part carries: its column grid and options. Whole models switch memory mode
// with set_memory_mode(root, ...), which reaches every reversible part below root.
#include <torch/nn/module.h>

#include <functional>

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
  std::vector<at::Tensor> run_columns(const at::Tensor& x) {
    if (record_input_) recorded_input_ = x.detach();
    return reversible::run_columns(grid_, x, options_);
  }

  ColumnGrid grid_;
  ColumnOptions options_;

 private:
  friend std::vector<std::vector<double>> measure_drift(torch::nn::Module&, const std::function<void()>&);
  bool record_input_ = false;
  at::Tensor recorded_input_;
};

// Sets the memory mode (and store-every) of every ReversibleModule in root's tree; returns how many it found.
int set_memory_mode(torch::nn::Module& root, MemoryMode mode, int64_t store_every = 0);
// The drift monitor (reversible/drift.h) on one reversible part, for the input of that part.
std::vector<double> measure_drift(ReversibleModule& module, const at::Tensor& part_input);
// The drift monitor on every reversible part of a model, each on the column input it receives when `forward`
// runs the model (without grad): one list of per-column errors per part, in reversible_modules() order.
std::vector<std::vector<double>> measure_drift(torch::nn::Module& model, const std::function<void()>& forward);
// Every ReversibleModule in root's tree, root first.
std::vector<ReversibleModule*> reversible_modules(torch::nn::Module& root);

}  // namespace revkit::reversible
