#pragma once
// The layers a model config row can name: Conv, C3, SPPF, Concat, nn.Upsample, Detect, ... from the layer
// registry, and every backbone of the backbone registry (row 0). A factory receives the row with Ultralytics'
// conventions already applied (nc, anchors and None substituted, repeats scaled by depth_multiple) and returns
// the built layer.
#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backbones/backbone.h"
#include "core/registry.h"

namespace revkit {

class DetectionHead;

struct LayerArgs {
  std::string source;  // the config, for errors
  int64_t row = 0;     // row number over backbone + head
  std::string type;    // the layer type the row names (Conv, C3, revcol_tiny, ...)
  nlohmann::json args = nlohmann::json::array();
  std::vector<int64_t> in_channels;  // channels of each `from` input
  int64_t repeats = 1;               // after depth scaling
  double width_multiple = 1.0;
  int64_t max_channels = 0;  // Ultralytics 8's scales: channels are capped here before the width multiple (0: none)
  int64_t num_classes = 80;
  BackboneSettings backbone;  // for a backbone row

  // Throws InputError "<source>: row R (Type): <problem>".
  [[noreturn]] void fail(const std::string& problem) const;
  // Fails unless the row has between `min` and `max` arguments.
  void expect_count(size_t min, size_t max) const;
  // The i-th argument, or `fallback` when absent (or null, if `null_is_default`); fails on a wrong type.
  int64_t integer(size_t i, std::optional<int64_t> fallback, const char* what) const;
  double number(size_t i, std::optional<double> fallback, const char* what) const;
  bool boolean(size_t i, std::optional<bool> fallback, const char* what) const;
  std::string text(size_t i, std::optional<std::string> fallback, const char* what) const;
  bool has(size_t i) const { return i < args.size() && !args[i].is_null(); }
  // Output channels scaled as Ultralytics does: make_divisible(min(c, max_channels) * width_multiple, 8).
  int64_t scaled_channels(int64_t c) const;
};

struct BuiltLayer {
  std::shared_ptr<torch::nn::Module> module;
  std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)> forward;
  std::vector<int64_t> out_channels;    // one entry per output
  std::string args_text;                // the arguments as built, for `revkit info`
  std::shared_ptr<DetectionHead> head;  // set for a detection head (the last row)
  bool backbone = false;                // several outputs taking row positions 0..4
};

using LayerFactory = std::function<BuiltLayer(const LayerArgs&)>;

// The layer types by name (necks and heads); the built-ins are added on first use. Backbones are not copied in:
// find_layer falls back to the backbone registry, so a plugin's backbone is a layer type as soon as it loads.
Registry<LayerFactory>& layer_registry();
// The factory of a row's layer type: a registered layer, else a backbone (taking row positions 0-4). Throws
// UnknownNameError listing the known layers and backbones.
LayerFactory find_layer(const std::string& type);

// ceil(x / divisor) * divisor.
int64_t make_divisible(double x, int64_t divisor = 8);

}  // namespace revkit
