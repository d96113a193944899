#include "engine/checkpoint.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/excerpt.h"
#include "core/safetensors.h"

namespace fs = std::filesystem;

namespace revkit {

void write_training_state(const std::string& path, const TrainingState& s) {
  write_safetensors(path, s.tensors,
                    {{"format", "revkit-train-state"},
                     {"next_epoch", std::to_string(s.next_epoch)},
                     {"best_fitness", fmt::format("{:.17g}", s.best_fitness)},
                     {"ema_updates", std::to_string(s.ema_updates)},
                     {"last_opt_step", std::to_string(s.last_opt_step)},
                     {"loss_scale", fmt::format("{:.17g}", s.loss_scale)},
                     {"loss_scale_good_steps", std::to_string(s.loss_scale_good_steps)},
                     {"args", s.options.dump()}});
}

TrainingState read_training_state(const std::string& path) {
  Safetensors file = read_safetensors(path);
  auto meta = [&](const char* key, const char* fallback = nullptr) {
    const auto it = file.metadata.find(key);
    if (it != file.metadata.end()) return it->second;
    if (fallback) return std::string(fallback);
    throw InputError(path, fmt::format("not a revkit training state (no '{}' in its metadata)", key));
  };
  if (meta("format") != "revkit-train-state") throw InputError(path, "not a revkit training state");
  TrainingState s;
  // Whole numbers only ("12abc" is not 12), in the range a run can have written.
  auto integer = [&](const char* key, std::optional<int64_t> least, const char* fallback = nullptr) {
    const std::string text = meta(key, fallback);
    size_t used = 0;
    int64_t value = 0;
    try {
      value = std::stoll(text, &used);
    } catch (const std::logic_error&) {  // std::invalid_argument, std::out_of_range
      used = 0;
    }
    if (used == 0 || used != text.size() || (least && value < *least))
      throw InputError(path, fmt::format("the training state's '{}' is '{}', not a whole number{}", key,
                                         printable(text, 40), least ? fmt::format(" of {} or more", *least) : ""));
    return value;
  };
  auto real = [&](const char* key, bool positive, const char* fallback = nullptr) {
    const std::string text = meta(key, fallback);
    size_t used = 0;
    double value = 0;
    try {
      value = std::stod(text, &used);
    } catch (const std::logic_error&) {
      used = 0;
    }
    if (used == 0 || used != text.size() || !std::isfinite(value) || (positive && !(value > 0)))
      throw InputError(path, fmt::format("the training state's '{}' is '{}', not a finite{} number", key,
                                         printable(text, 40), positive ? " positive" : ""));
    return value;
  };
  s.next_epoch = integer("next_epoch", 0);
  s.best_fitness = real("best_fitness", /*positive=*/false);
  s.ema_updates = integer("ema_updates", 0);
  s.last_opt_step = integer("last_opt_step", std::nullopt);  // counted from next_epoch: may be negative
  s.loss_scale = real("loss_scale", /*positive=*/true, "65536");
  s.loss_scale_good_steps = integer("loss_scale_good_steps", 0, "0");
  s.options = nlohmann::json::parse(meta("args"), nullptr, /*allow_exceptions=*/false);
  if (s.options.is_discarded()) throw InputError(path, "the saved training options cannot be read");
  s.tensors = std::move(file.tensors);
  return s;
}

std::string state_path_for(const std::string& weights_path) {
  const fs::path p(weights_path);
  return (p.parent_path() / (p.stem().string() + ".state.safetensors")).string();
}

std::string find_training_state(const std::string& run_or_state, const std::string& project) {
  std::string path = run_or_state;
  const std::string suffix = ".state.safetensors";
  if (path.empty()) {
    fs::file_time_type newest{};
    if (fs::is_directory(project))
      for (const auto& f : fs::recursive_directory_iterator(project))
        if (f.path().filename() == "last" + suffix && (path.empty() || f.last_write_time() > newest))
          path = f.path().string(), newest = f.last_write_time();
    if (path.empty()) throw InputError(project, "no run to resume (no weights/last.state.safetensors below it)");
  } else if (fs::is_directory(path)) {
    path = (fs::path(path) / "weights" / ("last" + suffix)).string();
  } else if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) {
    path = state_path_for(path);
  }
  if (!fs::exists(path)) throw InputError(path, "no training state to resume from");
  return path;
}

std::map<std::string, at::Tensor> strip_prefix(const std::map<std::string, at::Tensor>& tensors,
                                               const std::string& prefix) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : tensors)
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

std::map<std::string, at::Tensor> with_prefix(const std::map<std::string, at::Tensor>& tensors,
                                              const std::string& prefix) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : tensors) out[prefix + k] = v;
  return out;
}

}  // namespace revkit
