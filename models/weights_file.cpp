#include "models/weights_file.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/excerpt.h"
#include "core/logging.h"
#include "core/pytorch_checkpoint.h"
#include "core/safetensors.h"
#include "core/weights.h"

namespace revkit {
namespace fs = std::filesystem;

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

namespace {

// torch.save's formats by their first bytes: a zip archive (PyTorch >= 1.6), or the legacy pickle and tar formats,
// which the checkpoint reader names with what to do about them. Anything else is read as safetensors.
bool is_torch_save_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char head[262] = {};
  in.read(reinterpret_cast<char*>(head), sizeof head);
  const std::streamsize n = in.gcount();
  const bool zip = n >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
  const bool pickle = n >= 2 && head[0] == 0x80 && head[1] <= 5;
  const bool tar = n >= 262 && std::memcmp(head + 257, "ustar", 5) == 0;
  return zip || pickle || tar;
}

void log_match(const std::string& source, const WeightsMatch& m) {
  logger()->info("{}: {}{}", source, m.summary(),
                 m.missing.empty() && m.unexpected.empty() ? "" : " (--log-level debug lists them)");
  for (const auto& n : m.missing) logger()->debug("{}: missing {}", source, n);
  for (const auto& n : m.unexpected) logger()->debug("{}: unexpected {}", source, n);
  for (const auto& n : m.mismatched) logger()->debug("{}: {}", source, n);
}

// Weights with a NaN or an infinity train, validate and detect on as if nothing were wrong, to NaN losses or no
// boxes at all, far from the file that caused it: they are refused where they are read.
void check_finite(const std::string& path, const std::map<std::string, at::Tensor>& tensors) {
  for (const auto& [name, t] : tensors)
    if (at::isFloatingType(t.scalar_type()) && t.numel() > 0 && !at::isfinite(t).all().item<bool>())
      throw InputError(path, fmt::format("tensor '{}' holds NaN or infinite values", printable(name, 120)));
}

WeightsFile read_any_weights_file(const std::string& path) {
  WeightsFile out;
  if (!is_torch_save_file(path)) {
    const std::string extension = fs::path(path).extension().string();
    Safetensors file;
    try {
      file = read_safetensors(path);
    } catch (const InputError&) {
      // Named as what its name says it is, rather than as a safetensors file with a bad header.
      if (extension != ".pt" && extension != ".pth") throw;
      throw InputError(path, "not a PyTorch checkpoint: torch.save writes a zip archive (or a pickle before "
                             "PyTorch 1.6), and this file is neither");
    }
    out.tensors = std::move(file.tensors);
    out.metadata = std::move(file.metadata);
    out.layout = "safetensors";
    return out;
  }
  PyTorchCheckpoint ckpt = read_pytorch_checkpoint(path);
  out.tensors = std::move(ckpt.tensors);
  out.layout = ckpt.layout;
  out.skipped = std::move(ckpt.skipped);
  if (const auto it = ckpt.info.find("yaml"); it != ckpt.info.end()) out.metadata["config"] = it->second;
  for (const char* key : {"nc", "names"})
    if (const auto it = ckpt.info.find(key); it != ckpt.info.end()) out.metadata[key] = it->second;
  return out;
}

}  // namespace

WeightsFile read_weights_file(const std::string& path) {
  if (!fs::is_regular_file(path)) throw InputError(path, "cannot open file");
  WeightsFile out = read_any_weights_file(path);
  check_finite(path, out.tensors);
  return out;
}

std::vector<std::string> names_from_metadata(const std::map<std::string, std::string>& metadata) {
  std::vector<std::string> names;
  const auto it = metadata.find("names");
  if (it == metadata.end()) return names;
  const auto j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  auto text = [](const nlohmann::json& n) { return n.is_string() ? n.get<std::string>() : json_excerpt(n); };
  if (j.is_array()) {
    for (const auto& n : j) names.push_back(text(n));
  } else if (j.is_object()) {  // {"0": "person", "1": "bicycle", ...}: in index order, only when complete
    for (size_t k = 0; k < j.size(); ++k) {
      const auto n = j.find(std::to_string(k));
      if (n == j.end()) return {};
      names.push_back(text(*n));
    }
  }
  return names;
}

WeightsFile convert_weights(const std::string& input, const std::string& output) {
  WeightsFile file = read_weights_file(input);
  if (file.tensors.empty()) throw InputError(input, "no tensors to convert");
  auto metadata = file.metadata;
  metadata["format"] = "revkit-weights";
  const std::vector<std::string> names = names_from_metadata(metadata);
  if (!names.empty()) metadata["names"] = nlohmann::json(names).dump();
  write_safetensors(output, file.tensors, metadata);
  return file;
}

WeightsMatch transfer_weights(DetectionModelImpl& model, const WeightsFile& file, const std::string& source) {
  // A backbone's own checkpoint: its names gain the backbone row's prefix (whichever row matches best).
  std::string prefix;
  WeightsMatch best = match_named_tensors(model, file.tensors, "", model.derived_buffers());
  for (const auto& row : model.backbone_prefixes()) {
    std::map<std::string, at::Tensor> renamed;
    for (const auto& [name, t] : file.tensors) renamed[row + name] = t;
    WeightsMatch m = match_named_tensors(model, renamed, "", model.derived_buffers());
    if (m.matched.size() > best.matched.size()) best = std::move(m), prefix = row;
  }
  if (best.matched.empty())
    throw InputError(source, "no tensor matches the model's names and shapes (weights of another model?)");
  at::NoGradGuard no_grad;
  const std::set<std::string> take(best.matched.begin(), best.matched.end());
  auto copy = [&](const std::string& name, at::Tensor& target) {
    if (take.count(name)) target.copy_(file.tensors.at(name.substr(prefix.size())));
  };
  for (auto& p : model.named_parameters()) copy(p.key(), p.value());
  for (auto& b : model.named_buffers()) copy(b.key(), b.value());
  log_match(prefix.empty() ? source : fmt::format("{} (into {})", source, prefix.substr(0, prefix.size() - 1)), best);
  return best;
}

DetectionModel load_detector(const std::string& model, const std::string& weights, std::vector<std::string>* names) {
  WeightsFile file = read_weights_file(weights);
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
  if (const auto it = file.metadata.find("nc"); it != file.metadata.end()) {
    const auto nc = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (!nc.is_number_integer() || nc.get<int64_t>() <= 0)
      throw InputError(weights, "metadata 'nc' must be a positive integer, got '" + it->second + "'");
    overrides.num_classes = nc.get<int64_t>();
  } else {
    // Weights from elsewhere: the class count is in the shapes of the head's output convolutions, which a
    // one-class build of the config names.
    ModelOverrides one_class;
    one_class.num_classes = 1;
    const DetectionModel probe(config, source, one_class);
    const std::string prefix = fmt::format("model.{}.", probe->layers().back().row);
    const int64_t classes = probe->head()->classes_in_weights(file.tensors, prefix);
    if (classes == 0)
      throw InputError(weights, fmt::format("the shapes of the {}* head tensors fit no class count of the model's "
                                            "head: weights of another head?",
                                            prefix));
    if (classes > 0) overrides.num_classes = classes;
  }
  DetectionModel detector(config, source, overrides);
  log_match(weights, load_named_tensors(*detector, file.tensors, weights, "", true, detector->derived_buffers()));
  if (names) {
    *names = names_from_metadata(file.metadata);
    for (auto k = static_cast<int64_t>(names->size()); k < detector->num_classes(); ++k)
      names->push_back(std::to_string(k));
  }
  return detector;
}

}  // namespace revkit
