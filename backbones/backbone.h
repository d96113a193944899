#pragma once
// What a detector's builder needs of a backbone: a forward that returns feature maps from fine to coarse, and
// their channels and strides known without running it.
#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/registry.h"
#include "reversible/reversible_function.h"

namespace revkit {

class Backbone : public torch::nn::Module {
 public:
  virtual std::vector<at::Tensor> forward(const at::Tensor& x) = 0;
  virtual std::vector<int64_t> out_channels() const = 0;
  virtual std::vector<int64_t> strides() const = 0;
  // Input sides must be multiples of this.
  virtual int64_t size_divisor() const { return strides().back(); }
};

// The settings a user gives a backbone (from the command line, a training run's options or a test), carried by
// value from the CLI to the backbone's factory; unset fields keep the backbone's own defaults.
struct BackboneSettings {
  // The reversible engine's settings (reversible::ColumnOptions).
  std::optional<reversible::MemoryMode> memory_mode;
  std::optional<int64_t> store_every;
  std::optional<int64_t> keep_columns;
  std::optional<int64_t> keep_matmuls;
  std::optional<int64_t> keep_levels;
  std::optional<double> memory_budget_mb;
  std::optional<int64_t> recompute_chunks;
  std::optional<double> alpha_floor;
  // The architecture's.
  std::optional<int64_t> columns;
  std::optional<int64_t> kernel_size;
  std::optional<double> drop_path;  // the largest drop-path rate
  std::optional<double> alpha_init;

  // `defaults` with the reversible settings that are set applied.
  reversible::ColumnOptions column_options(reversible::ColumnOptions defaults) const;
};

using BackboneFactory = std::function<std::shared_ptr<Backbone>(const BackboneSettings&)>;

// Every backbone by the name configs use (revcol_tiny, ...). The built-ins are added on first use.
Registry<BackboneFactory>& backbone_registry();

// Builds a registered backbone. An unknown name is an UnknownNameError; a setting the backbone refuses (its
// TORCH_CHECKs on columns, kernel size, drop path, ...) an InputError "backbone <name>: <why>".
std::shared_ptr<Backbone> make_backbone(const std::string& name, const BackboneSettings& settings);

}  // namespace revkit
