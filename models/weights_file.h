#pragma once
// A detector's weights file: its parameters and buffers by name (safetensors, written atomically), with the model
// config, class count and class names in the metadata, so `val` and `detect` can rebuild the model.
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "core/weights.h"
#include "models/detection_model.h"

namespace revkit {

// Parameters and buffers of `module` by name, as contiguous CPU tensors.
std::map<std::string, at::Tensor> named_state(const torch::nn::Module& module);

void save_weights(const std::string& path, const torch::nn::Module& module,
                  const std::map<std::string, std::string>& metadata = {});

// A weights file of either kind, chosen by its content: revkit's safetensors, or a torch.save checkpoint (.pt,
// .pth: a state dict, a training checkpoint holding one, or a pickled Ultralytics model).
struct WeightsFile {
  std::map<std::string, at::Tensor> tensors;
  // As revkit writes it: "config" (the model config as JSON), "nc", "names" (a JSON list). From a checkpoint:
  // what it knows (an Ultralytics model's yaml, nc and names).
  std::map<std::string, std::string> metadata;
  std::string layout;                // "safetensors", or where in the checkpoint the tensors were
  std::vector<std::string> skipped;  // checkpoint entries that are not weights
};
WeightsFile read_weights_file(const std::string& path);

// Class names from a "names" metadata entry: a JSON list, or a JSON object {"0": "person", ...} as Ultralytics 8
// keeps them. Empty when there is none or it is neither.
std::vector<std::string> names_from_metadata(const std::map<std::string, std::string>& metadata);

// `input` (.pt/.pth/.safetensors) written as revkit's safetensors with its metadata, atomically; returns the file.
WeightsFile convert_weights(const std::string& input, const std::string& output);

// Copies every tensor whose name and shape match one of the model's (a fine-tuning start from other weights). A
// file whose names are a backbone's own (an ImageNet RevCol checkpoint) goes into the model's backbone row.
// Logs the match (names with --log-level debug); throws InputError when nothing matches.
WeightsMatch transfer_weights(DetectionModelImpl& model, const WeightsFile& file, const std::string& source);

// A detector with trained weights: built from `model` (a config path or built-in name; empty: the config saved in
// the weights' metadata) with the class count of the weights, then loaded strictly. `names` receives the class
// names saved with the weights (or "0", "1", ... when none were).
DetectionModel load_detector(const std::string& model, const std::string& weights,
                             std::vector<std::string>* names = nullptr);

}  // namespace revkit
