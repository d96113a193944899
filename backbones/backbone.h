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

// Overrides a backbone factory applies to its built-in defaults; unset fields keep them.
struct BackboneArgs {
  std::optional<int64_t> columns;
  std::optional<int64_t> kernel_size;
  std::optional<double> drop_path;
  std::optional<double> alpha_init;
  std::optional<double> alpha_floor;
  std::optional<reversible::MemoryMode> memory_mode;
  std::optional<int64_t> store_every;
};

using BackboneFactory = std::function<std::shared_ptr<Backbone>(const BackboneArgs&)>;

// Every backbone by the name configs use (revcol_tiny, ...). The built-ins are added on first use.
Registry<BackboneFactory>& backbone_registry();

}  // namespace revkit
