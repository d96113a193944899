#include "models/weights_file.h"

#include <ATen/ATen.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/weights.h"

namespace revkit {

std::map<std::string, at::Tensor> named_state(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value().detach().cpu().contiguous();
  for (const auto& b : module.named_buffers()) out[b.key()] = b.value().detach().cpu().contiguous();
  return out;
}

void save_weights(const std::string& path, const torch::nn::Module& module,
                  const std::map<std::string, std::string>& metadata) {
  write_safetensors(path, named_state(module), metadata);
}

int64_t transfer_weights(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                         const std::string& source, int64_t* total) {
  at::NoGradGuard no_grad;
  int64_t copied = 0, count = 0;
  auto copy = [&](const std::string& name, at::Tensor& target) {
    ++count;
    const auto it = tensors.find(name);
    if (it == tensors.end() || it->second.sizes() != target.sizes()) return;
    target.copy_(it->second);
    ++copied;
  };
  for (auto& p : module.named_parameters()) copy(p.key(), p.value());
  for (auto& b : module.named_buffers()) copy(b.key(), b.value());
  if (copied == 0)
    throw InputError(source, "no tensor matches the model's names and shapes (weights of another model?)");
  if (total) *total = count;
  return copied;
}

DetectionModel load_detector(const std::string& model, const std::string& weights, std::vector<std::string>* names) {
  Safetensors file = read_safetensors(weights);
  nlohmann::json config;
  std::string source = model;
  if (!model.empty()) {
    config = load_model_config(model, &source);
  } else {
    const auto it = file.metadata.find("config");
    if (it == file.metadata.end()) throw InputError(weights, "no model config saved with these weights: pass --model");
    config = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded()) throw InputError(weights, "the model config saved with these weights is not valid JSON");
    source = weights;
  }
  ModelOverrides overrides;
  std::vector<std::string> class_names;
  if (const auto it = file.metadata.find("names"); it != file.metadata.end()) {
    const auto j = nlohmann::json::parse(it->second, nullptr, false);
    if (j.is_array())
      for (const auto& n : j) class_names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
  }
  if (const auto it = file.metadata.find("nc"); it != file.metadata.end()) {
    overrides.num_classes = std::stoll(it->second);
  } else {
    // Weights from elsewhere: the class count is in the shape of the head's first convolution.
    for (const auto& [name, t] : file.tensors)
      if (name.find(".m.0.weight") != std::string::npos && t.dim() == 4) {
        const DetectionModel probe(config, source);
        overrides.num_classes = t.size(0) / probe->head()->na - 5;
        break;
      }
  }
  DetectionModel detector(config, source, overrides);
  load_named_tensors(*detector, file.tensors, weights);
  if (names) {
    *names = class_names;
    for (auto k = static_cast<int64_t>(names->size()); k < detector->num_classes(); ++k)
      names->push_back(std::to_string(k));
  }
  return detector;
}

}  // namespace revkit
