#pragma once
// A detector's weights file: its parameters and buffers by name (safetensors, written atomically), with the model
// config, class count and class names in the metadata, so `val` and `detect` can rebuild the model.
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "models/detection_model.h"

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
DetectionModel load_detector(const std::string& model, const std::string& weights,
                             std::vector<std::string>* names = nullptr);

}  // namespace revkit
