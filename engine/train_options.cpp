#include "engine/train_options.h"

#include <fmt/format.h>

#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace nlohmann {
// An unset optional is null.
template <typename T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& o) { j = o ? json(*o) : json(nullptr); }
  static void from_json(const json& j, std::optional<T>& o) {
    if (j.is_null())
      o.reset();
    else
      o = j.get<T>();
  }
};
}  // namespace nlohmann

namespace revkit {

void check_batch_splits(int64_t batch, int64_t ranks) {
  if (batch % ranks != 0) throw InputError(fmt::format("--batch {} must be a multiple of the {} ranks", batch, ranks));
}

namespace reversible {
void to_json(nlohmann::json& j, MemoryMode m) { j = to_string(m); }
void from_json(const nlohmann::json& j, MemoryMode& m) { m = parse_memory_mode(j.get<std::string>()); }
}  // namespace reversible

// The field lists, once each.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BackboneSettings, memory_mode, store_every, keep_columns,
                                                keep_matmuls, keep_levels, memory_budget_mb, recompute_chunks,
                                                alpha_floor, columns, kernel_size, drop_path, alpha_init)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ScheduleOptions, lr0, lrf, momentum, weight_decay, warmup_epochs,
                                                warmup_momentum, warmup_bias_lr, min_warmup_iterations, cosine,
                                                nominal_batch)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AugmentOptions, hsv_h, hsv_s, hsv_v, translate, scale, fliplr, mosaic)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainOptions, model, data, weights, project, name, exist_ok, epochs,
                                                imgsz, batch, workers, seed, backbone, amp, strict, device, augment,
                                                val, schedule, augment_options, close_mosaic, max_grad_norm,
                                                max_nonfinite_in_row, checkpoint_every, sync_bn, channels_last)

nlohmann::json TrainOptions::to_json() const {
  nlohmann::json j;
  revkit::to_json(j, *this);
  return j;
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j, const std::string& source) {
  TrainOptions o;
  try {
    revkit::from_json(j, o);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(source, std::string("the saved training options cannot be read: ") + e.what());
  }
  return o;
}

namespace {
void write_yaml_value(std::ostringstream& out, const nlohmann::json& v, int indent) {
  if (!v.is_object()) {
    out << " " << v.dump() << "\n";  // JSON scalars and flow lists are YAML too; strings come quoted and escaped
    return;
  }
  out << "\n";
  for (auto it = v.begin(); it != v.end(); ++it) {
    out << std::string(indent, ' ') << it.key() << ":";
    write_yaml_value(out, it.value(), indent + 2);
  }
}
}  // namespace

void TrainOptions::write_yaml(const std::string& path) const {
  std::ostringstream out;
  const nlohmann::json options = to_json();
  for (auto it = options.begin(); it != options.end(); ++it) {
    out << it.key() << ":";
    write_yaml_value(out, it.value(), 2);
  }
  write_file_atomically(path, out.str());
}

}  // namespace revkit
