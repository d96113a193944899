#pragma once
// The public gradient-equivalence API: check a reversible model against its plain-autograd twin, or a port
// against a reference dump, tensor by tensor, with the norm-wise relative difference ||a - b|| / ||b||.
#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "reversible/reversible_function.h"

namespace revkit::reversible {

// ||actual - reference|| / ||reference||, computed in float64. An undefined tensor counts as zeros. Where the
// reference is all zeros the absolute norm ||actual|| is returned; where either holds a NaN or an infinity,
// +infinity. Shapes must match.
double relative_difference(const at::Tensor& actual, const at::Tensor& reference);

struct Difference {
  std::string category;  // "outputs", "input gradient", "parameter gradients", "buffers"
  std::string name;
  double relative = 0.0;
};

struct EquivalenceReport {
  std::vector<Difference> differences;  // one per compared tensor
  bool rng_stream_equal = true;         // the RNG state after both runs was the same

  void add(const std::string& category, const std::string& name, const at::Tensor& actual, const at::Tensor& reference);
  // The worst entry of a category (relative = 0 and an empty name if the category has none).
  Difference worst(const std::string& category) const;
  double worst_overall() const;
  std::vector<std::string> categories() const;  // in the order first added
  // Worst difference of each category within `tolerance`, and the RNG stream the same.
  bool within(double tolerance) const;
};

// The tolerances revkit holds its modes to: Off and Column 1e-10 (float64) and 1e-5 (float32); Full, whose
// inverse divides by alpha every column, and Auto, 1e-8 and 2e-4. Half precisions: 1e-2.
double default_tolerance(MemoryMode mode, c10::ScalarType dtype);

// A forward pass of the model under test: input in, output tensors out.
using ForwardFn = std::function<std::vector<at::Tensor>(const at::Tensor& input)>;

struct ModeComparison {
  MemoryMode mode = MemoryMode::Column;
  int64_t store_every = 0;
  int64_t keep_columns = 0;
  int64_t keep_matmuls = 0;
  int64_t keep_levels = 0;
  double memory_budget_mb = 0.0;  // Auto: as ColumnOptions (0: half of what the device has available)
  int64_t recompute_chunks = 1;   // for `mode`'s run
  MemoryMode reference = MemoryMode::Off;
  uint64_t seed = 0;  // seeds the RNG identically before both runs, and the loss probes
};

// Runs `model` through `forward` twice with the same weights, RNG and input — first in the reference mode,
// then in `mode` — with loss = sum_k sum(output_k * probe_k) for fixed random probes, and compares outputs, the
// input gradient, every parameter gradient and every buffer by name. Buffers are put back between the runs;
// parameter gradients are cleared before each. The model's memory modes are restored afterwards, and the RNG
// streams (the CPU generator and the CUDA generators of the devices the model and input are on) are compared
// after both runs and put back. A model with no reversible part is refused (c10::Error): its modes cannot differ.
EquivalenceReport compare_memory_modes(torch::nn::Module& model, const ForwardFn& forward, const at::Tensor& input,
                                       const ModeComparison& comparison);

}  // namespace revkit::reversible
