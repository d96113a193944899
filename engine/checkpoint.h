#pragma once
// Weights and training state on disk, both safetensors written atomically. A weights file holds a model's
// parameters and buffers by name, with the model's config, class count and names in its metadata, so `val` and
// `detect` can rebuild the model. A state file (beside it, ".state.safetensors") holds everything a run needs to
// resume exactly: the model, its EMA, the optimizer's momentum and any gradients not yet applied, the RNG
// streams, and the counters.
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "engine/detection_model.h"

namespace revkit {

// Parameters and buffers of `module` by name, as contiguous CPU tensors.
std::map<std::string, at::Tensor> named_state(const torch::nn::Module& module);

void save_weights(const std::string& path, const torch::nn::Module& module,
                  const std::map<std::string, std::string>& metadata = {});

// Copies every tensor whose name and shape match one of the module's (a fine-tuning start from other weights);
// returns how many were copied out of the module's total. Throws InputError when none match.
int64_t transfer_weights(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                         const std::string& source, int64_t* total = nullptr);

// A detector with trained weights: built from `model` (a config path or built-in name; empty: the config saved in
// the weights' metadata) with the class count of the weights, then loaded strictly. `names` receives the class
// names saved with the weights (or "0", "1", ... when none were).
DetectionModel load_detector(const std::string& model, const std::string& weights, std::vector<std::string>* names = nullptr);

// "<dir>/last.safetensors" -> "<dir>/last.state.safetensors".
std::string state_path_for(const std::string& weights_path);

}  // namespace revkit
