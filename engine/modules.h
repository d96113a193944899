#pragma once
// The registry of every module a model config row can name (Conv, C3, SPPF, Concat, nn.Upsample, Detect,
// revcol_tiny, ...). A factory receives the row with Ultralytics' conventions already applied (nc, anchors and
// None substituted, repeats scaled by depth_multiple) and returns the built layer.
#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/registry.h"
#include "reversible/reversible_function.h"

namespace revkit {

class DetectImpl;

struct LayerArgs {
  std::string source;   // the config, for errors
  int64_t row = 0;      // row number over backbone + head
  std::string module;   // the name the row uses
  nlohmann::json args = nlohmann::json::array();
  std::vector<int64_t> in_channels;  // channels of each `from` input
  int64_t repeats = 1;               // after depth scaling
  double width_multiple = 1.0;
  int64_t num_classes = 80;
  std::optional<reversible::MemoryMode> memory_mode;
  std::optional<int64_t> store_every;
  std::optional<double> drop_path;

  // Throws InputError "<source>: row R (Module): <problem>".
  [[noreturn]] void fail(const std::string& problem) const;
  // Fails unless the row has between `min` and `max` arguments.
  void expect_count(size_t min, size_t max) const;
  // The i-th argument, or `fallback` when absent (or null, if `null_is_default`); fails on a wrong type.
  int64_t integer(size_t i, std::optional<int64_t> fallback, const char* what) const;
  double number(size_t i, std::optional<double> fallback, const char* what) const;
  bool boolean(size_t i, std::optional<bool> fallback, const char* what) const;
  std::string text(size_t i, std::optional<std::string> fallback, const char* what) const;
  bool has(size_t i) const { return i < args.size() && !args[i].is_null(); }
  // Output channels scaled as Ultralytics does: make_divisible(c * width_multiple, 8).
  int64_t scaled_channels(int64_t c) const;
};

struct BuiltLayer {
  std::shared_ptr<torch::nn::Module> module;
  std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)> forward;
  std::vector<int64_t> out_channels;  // one entry per output
  std::string args_text;              // the arguments as built, for `revkit info`
  std::shared_ptr<DetectImpl> detect;  // set for a detection head
  bool backbone = false;               // several outputs taking row positions 0..4
};

using LayerFactory = std::function<BuiltLayer(const LayerArgs&)>;

// Every row module by name; built-ins (necks, heads, backbones) are added on first use.
Registry<LayerFactory>& module_registry();

// ceil(x / divisor) * divisor.
int64_t make_divisible(double x, int64_t divisor = 8);

}  // namespace revkit
