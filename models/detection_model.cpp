#include "models/detection_model.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/modules/batchnorm.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <regex>

#include "core/config.h"
#include "core/error.h"
#include "core/excerpt.h"
#include "core/logging.h"
#include "core/weights.h"
#include "models/builtin_configs.h"

namespace revkit {
namespace {

constexpr int64_t kBackbonePositions = 5;

// Python's round(): halves go to the even neighbour, as Ultralytics' repeat scaling does.
int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

nlohmann::json substitute(const nlohmann::json& args, int64_t nc, const nlohmann::json& anchors) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& a : args) {
    if (a.is_string() && a == "nc")
      out.push_back(nc);
    else if (a.is_string() && a == "anchors")
      out.push_back(anchors);
    else if (a.is_string() && a == "None")
      out.push_back(nullptr);
    else if (a.is_string() && (a == "True" || a == "False"))
      out.push_back(a == "True");
    else
      out.push_back(a);
  }
  return out;
}

}  // namespace

// What the rows are built with, from the config's top-level keys.
struct DetectionModelImpl::Header {
  double depth = 1.0, width = 1.0;
  int64_t max_channels = 0;
  nlohmann::json anchors;
  nlohmann::json rows = nlohmann::json::array();  // backbone then head
};

DetectionModelImpl::Header DetectionModelImpl::read_header(const nlohmann::json& cfg, const std::string& source,
                                                           const ModelOverrides& overrides) {
  auto fail = [&](const std::string& what) -> void { throw InputError(source, what); };
  if (!cfg.is_object()) fail("a model config must be a mapping with nc, backbone and head");
  // Ultralytics 8 adds scales, and writes scale, yaml_file and channels into the yaml its checkpoints keep.
  static const std::vector<std::string> known = {
      "nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head",
      "ch", "channels",       "scales",         "scale",   "yaml_file"};
  for (auto it = cfg.begin(); it != cfg.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      fail(fmt::format("unknown key '{}' (expected {})", printable(it.key(), 80), fmt::join(known, ", ")));

  if (overrides.num_classes) {
    num_classes_ = *overrides.num_classes;
  } else {
    if (!cfg.contains("nc")) fail("nc is missing (the number of classes)");
    if (!fits_int64(cfg["nc"])) fail("nc must be an integer, got " + json_excerpt(cfg["nc"]));
    num_classes_ = cfg["nc"].get<int64_t>();
  }
  if (num_classes_ <= 0) fail(fmt::format("nc must be positive, got {}", num_classes_));
  // Ultralytics writes the input channels into the yaml its checkpoints keep.
  for (const char* key : {"ch", "channels"})
    if (cfg.contains(key) && cfg[key] != 3)
      fail(fmt::format("{} (input channels) must be 3, got {}", key, json_excerpt(cfg[key])));
  auto multiple = [&](const char* key) {
    if (!cfg.contains(key)) return 1.0;
    // Ultralytics' scales reach 1.5; far beyond, repeats and channel counts overflow.
    if (!cfg[key].is_number() || !(cfg[key].get<double>() > 0 && cfg[key].get<double>() <= 100))
      fail(fmt::format("{} must be a positive number up to 100, got {}", key, json_excerpt(cfg[key])));
    return cfg[key].get<double>();
  };
  Header h;
  h.depth = multiple("depth_multiple");
  h.width = multiple("width_multiple");
  if (cfg.contains("scales")) read_scale(cfg, source, h);
  if (cfg.contains("anchors")) h.anchors = cfg["anchors"];
  for (const char* part : {"backbone", "head"}) {
    if (!cfg.contains(part)) fail(fmt::format("'{}' is missing (a list of [from, number, module, args] rows)", part));
    if (!cfg[part].is_array()) fail(fmt::format("'{}' must be a list of [from, number, module, args] rows", part));
    for (const auto& r : cfg[part]) h.rows.push_back(r);
  }
  if (h.rows.empty()) fail("the model has no rows");
  return h;
}

void DetectionModelImpl::read_scale(const nlohmann::json& cfg, const std::string& source, Header& h) {
  auto fail = [&](const std::string& what) -> void { throw InputError(source, what); };
  const auto& scales = cfg["scales"];
  if (!scales.is_object() || scales.empty())
    fail("scales must be a mapping of scale names to [depth, width, max_channels]");
  if (cfg.contains("depth_multiple") || cfg.contains("width_multiple"))
    fail("give either scales or depth_multiple and width_multiple, not both");
  std::string scale = cfg.contains("scale") && cfg["scale"].is_string() ? cfg["scale"].get<std::string>() : "";
  if (cfg.contains("scale") && !cfg["scale"].is_string())
    fail("scale must be a name, got " + json_excerpt(cfg["scale"]));
  if (scale.empty()) {
    scale = scales.contains("n") ? "n" : scales.begin().key();
    logger()->warn("{}: no scale chosen (name the model e.g. yolov8{} for a config yolov8.yaml); using '{}'", source,
                   scale, scale);
  }
  if (!scales.contains(scale)) {
    std::vector<std::string> names;
    for (auto it = scales.begin(); it != scales.end(); ++it) names.push_back(it.key());
    fail(fmt::format("scale '{}' is not in scales ({})", scale, fmt::join(names, ", ")));
  }
  const auto& row = scales[scale];
  if (!row.is_array() || row.size() != 3 || !row[0].is_number() || !row[1].is_number() || !row[2].is_number_integer() ||
      row[0].get<double>() <= 0 || row[1].get<double>() <= 0 || row[2].get<int64_t>() <= 0)
    fail(
        fmt::format("scale '{}' must be [depth, width, max_channels], all positive, got {}", scale, json_excerpt(row)));
  h.depth = row[0].get<double>();
  h.width = row[1].get<double>();
  h.max_channels = row[2].get<int64_t>();
}

void DetectionModelImpl::add_row(const Header& h, size_t i, const std::string& source, const ModelOverrides& overrides,
                                 Positions& positions) {
  const auto& row = h.rows[i];
  std::vector<int64_t>& channels = positions.channels;
  const int64_t position = static_cast<int64_t>(i) + positions.offset;
  auto row_fail = [&](const std::string& what) -> void {
    throw InputError(source, fmt::format("row {}: {}", i, what));
  };
  if (!row.is_array() || row.size() != 4) row_fail("expected [from, number, module, args], got " + json_excerpt(row));
  if (!row[2].is_string()) row_fail("the layer type must be a name, got " + json_excerpt(row[2]));
  LayerArgs args;
  args.source = source;
  args.row = static_cast<int64_t>(i);
  args.type = row[2].get<std::string>();
  LayerFactory factory;
  try {
    factory = find_layer(args.type);
  } catch (const UnknownNameError& e) {
    row_fail(e.what());
  }

  std::vector<int64_t> from;
  const nlohmann::json from_list = row[0].is_array() ? row[0] : nlohmann::json::array({row[0]});
  if (from_list.empty()) args.fail("from is an empty list");
  for (const auto& f : from_list) {
    if (!fits_int64(f)) args.fail("from must be an integer or a list of integers, got " + json_excerpt(row[0]));
    const int64_t v = f.get<int64_t>();
    const int64_t p = v < 0 ? position + v : v;
    if (p < -1 || p >= position || (v < -1 && p < 0))
      args.fail(fmt::format("from {} is out of range: row positions before this one are 0..{}", v, position - 1));
    if (p >= 0 && channels[p] == 0) args.fail(fmt::format("from {} names an unused backbone position", v));
    from.push_back(p);
    args.in_channels.push_back(p < 0 ? 3 : channels[p]);
  }
  if (!fits_int64(row[1]) || row[1].get<int64_t>() < 1)
    args.fail("number must be a positive integer, got " + json_excerpt(row[1]));
  const int64_t n = row[1].get<int64_t>();
  // Configs repeat a module a few times; a count in the thousands would build for minutes and gigabytes.
  constexpr int64_t kMaxRepeats = 1000;
  if (n > kMaxRepeats || (n > 1 && n * h.depth > kMaxRepeats))
    args.fail(fmt::format("number {} (times depth_multiple {}) is above {} repeats", n, h.depth, kMaxRepeats));
  args.repeats = n > 1 ? std::max<int64_t>(round_half_even(n * h.depth), 1) : n;
  if (!row[3].is_array()) args.fail("args must be a list, got " + json_excerpt(row[3]));
  args.args = substitute(row[3], num_classes_, h.anchors);
  args.width_multiple = h.width;
  args.max_channels = h.max_channels;
  args.num_classes = num_classes_;
  args.backbone = overrides.backbone;

  BuiltLayer built;
  try {
    built = factory(args);
  } catch (const c10::Error& e) {  // a module refusing its arguments (e.g. channels that groups do not divide)
    args.fail(first_line(e));
  }
  model->push_back(built.module);
  LayerInfo info;
  info.row = args.row;
  info.from = from;
  info.from_text = row[0].dump();
  info.repeats = args.repeats;
  info.type = args.type;
  info.args = built.args_text;
  info.out_channels = built.out_channels;
  info.params = count_parameters(*built.module);
  info.backbone = built.backbone;
  Step step{built.forward, from, {}};
  if (built.backbone) {
    const int64_t k = static_cast<int64_t>(built.out_channels.size());
    channels.assign(kBackbonePositions - k, 0);
    for (int64_t c : built.out_channels) channels.push_back(c);
    for (int64_t p = kBackbonePositions - k; p < kBackbonePositions; ++p) step.outputs.push_back(p);
    positions.offset = kBackbonePositions - 1;
    info.position = kBackbonePositions - k;
  } else {
    channels.push_back(built.out_channels.at(0));
    step.outputs.push_back(position);
    info.position = position;
  }
  if (built.head) {
    if (i + 1 != h.rows.size()) args.fail("Detect must be the last row");
    head_ = built.head;
  }
  steps_.push_back(std::move(step));
  layers_.push_back(std::move(info));
}

void DetectionModelImpl::finish(int64_t positions, const std::string& source) {
  last_use_.assign(positions, -1);
  for (size_t s = 0; s < steps_.size(); ++s)
    for (int64_t p : steps_[s].from)
      if (p >= 0) last_use_[p] = static_cast<int64_t>(s);

  // Strides from the feature maps of a 256x256 probe, as Ultralytics finds them.
  at::NoGradGuard no_grad;
  const bool was_training = is_training();
  eval();
  std::vector<at::Tensor> features;
  try {
    features = run(at::zeros({1, 3, 256, 256}), /*up_to_head=*/true);
  } catch (const c10::Error& e) {  // rows that fit one by one but not together (maps of different sizes to Concat)
    throw InputError(source, "the model does not run on a 256x256 image: " + first_line(e));
  }
  train(was_training);
  for (const auto& f : features) strides_.push_back(256.0 / static_cast<double>(f.size(2)));
  head_->set_strides(strides_);
  size_divisor_ = static_cast<int64_t>(*std::max_element(strides_.begin(), strides_.end()));
}

std::set<std::string> DetectionModelImpl::derived_buffers() const {
  return {fmt::format("model.{}.stride", layers_.back().row)};
}

std::vector<std::string> DetectionModelImpl::backbone_prefixes() const {
  std::vector<std::string> out;
  for (const auto& l : layers_)
    if (l.backbone) out.push_back(fmt::format("model.{}.", l.row));
  return out;
}

DetectionModelImpl::DetectionModelImpl(const nlohmann::json& cfg, const std::string& source,
                                       const ModelOverrides& overrides) {
  const Header header = read_header(cfg, source, overrides);
  model = register_module("model", torch::nn::ModuleList());
  Positions positions;
  for (size_t i = 0; i < header.rows.size(); ++i) add_row(header, i, source, overrides, positions);
  if (!head_) throw InputError(source, "the model has no Detect row");
  finish(static_cast<int64_t>(positions.channels.size()), source);
  const bool has_backbone_row =
      std::any_of(layers_.begin(), layers_.end(), [](const LayerInfo& l) { return l.backbone; });
  channels_last_ = overrides.channels_last.value_or(!has_backbone_row);
  if (channels_last_) {
    at::NoGradGuard no_grad;
    for (auto& p : parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

std::vector<at::Tensor> DetectionModelImpl::run(const at::Tensor& images, bool up_to_head) {
  std::vector<at::Tensor> outputs(last_use_.size());
  std::vector<at::Tensor> last;
  for (size_t s = 0; s < steps_.size(); ++s) {
    const Step& step = steps_[s];
    std::vector<at::Tensor> inputs;
    for (int64_t p : step.from) inputs.push_back(p < 0 ? images : outputs[p]);
    if (up_to_head && s + 1 == steps_.size()) return inputs;
    last = step.forward(inputs);
    // A backbone returns its maps fine to coarse; they fill its positions from the right.
    const size_t k = std::min(last.size(), step.outputs.size());
    for (size_t o = 0; o < k; ++o) outputs[step.outputs[step.outputs.size() - k + o]] = last[last.size() - k + o];
    for (int64_t p : step.from)  // free what no later row reads
      if (p >= 0 && last_use_[p] == static_cast<int64_t>(s)) outputs[p] = at::Tensor();
  }
  return last;
}

std::vector<at::Tensor> DetectionModelImpl::forward(const at::Tensor& images) {
  check_input(images);
  return run(in_layout(images), /*up_to_head=*/false);
}

std::vector<at::Tensor> DetectionModelImpl::forward_raw(const at::Tensor& images) {
  check_input(images);
  return head_->raw(run(in_layout(images), /*up_to_head=*/true));
}

at::Tensor DetectionModelImpl::in_layout(const at::Tensor& images) const {
  return channels_last_ ? images.contiguous(at::MemoryFormat::ChannelsLast) : images;
}

int64_t min_training_batch(const torch::nn::Module& network, int64_t imgsz, int64_t size_divisor) {
  if (imgsz > size_divisor) return 1;
  for (const auto& m : network.modules())
    if (m->as<torch::nn::BatchNorm2dImpl>() != nullptr) return 2;
  return 1;
}

void check_training_batch(const torch::nn::Module& network, int64_t imgsz, int64_t size_divisor, int64_t images,
                          const std::string& what) {
  const int64_t fewest = min_training_batch(network, imgsz, size_divisor);
  if (images >= fewest) return;
  throw InputError(
      fmt::format("{}: a training batch of {} image{} at --imgsz {}, where the deepest feature maps are "
                  "1x1 and BatchNorm needs {} or more; train at a larger --imgsz",
                  what, images, images == 1 ? "" : "s", imgsz, fewest));
}

void check_image_size_option(int64_t imgsz) {
  if (imgsz <= 0) throw InputError(fmt::format("--imgsz must be positive, got {}", imgsz));
  if (imgsz > kMaxImageSize) throw InputError(fmt::format("--imgsz must be at most {}, got {}", kMaxImageSize, imgsz));
}

int64_t DetectionModelImpl::checked_image_size(int64_t imgsz) const {
  check_image_size_option(imgsz);
  if (imgsz % size_divisor_ == 0) return imgsz;
  const int64_t rounded = (imgsz + size_divisor_ - 1) / size_divisor_ * size_divisor_;
  logger()->warn("--imgsz {} is not a multiple of the largest stride {}; using {}", imgsz, size_divisor_, rounded);
  return rounded;
}

void DetectionModelImpl::check_input(const at::Tensor& images) const {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3, "DetectionModel: expected images [N, 3, H, W], got ",
              images.sizes());
  TORCH_CHECK(images.size(2) % size_divisor_ == 0 && images.size(3) % size_divisor_ == 0,
              "DetectionModel: image height and width must be multiples of ", size_divisor_, ", got ", images.size(2),
              "x", images.size(3));
}

namespace {

// "yolov8s" -> "yolov8" and "s" (a scale letter right after the version digits, as Ultralytics reads it), else
// nullopt.
std::optional<std::pair<std::string, std::string>> split_scale(const std::string& stem) {
  std::smatch m;
  static const std::regex pattern("^(.*[0-9])([nslmx])(.*)$");
  if (!std::regex_match(stem, m, pattern)) return std::nullopt;
  return std::make_pair(m[1].str() + m[3].str(), m[2].str());
}

const std::string* builtin_text(const std::string& name) {
  for (const auto& [n, text] : builtin_configs())
    if (n == name) return &text;
  return nullptr;
}

// A config with scales and none chosen takes the one its name says.
nlohmann::json with_scale(nlohmann::json cfg, const std::string& stem) {
  const auto split = split_scale(stem);
  if (split && cfg.is_object() && cfg.contains("scales") && !cfg.contains("scale")) cfg["scale"] = split->second;
  return cfg;
}

}  // namespace

std::vector<std::string> builtin_model_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : builtin_configs()) {
    const nlohmann::json cfg = parse_config_text(text, name, /*yaml=*/true);
    if (!cfg.contains("scales")) {
      names.push_back(name);
      continue;
    }
    for (auto it = cfg["scales"].begin(); it != cfg["scales"].end(); ++it) names.push_back(name + it.key());
  }
  std::sort(names.begin(), names.end());
  return names;
}

nlohmann::json load_model_config(const std::string& name_or_path, std::string* source) {
  if (source) *source = name_or_path;
  if (const std::string* text = builtin_text(name_or_path))
    return parse_config_text(*text, name_or_path, /*yaml=*/true);
  if (const auto split = split_scale(name_or_path))
    if (const std::string* text = builtin_text(split->first)) {
      nlohmann::json cfg = parse_config_text(*text, name_or_path, /*yaml=*/true);
      if (cfg.contains("scales") && cfg["scales"].contains(split->second)) return with_scale(cfg, name_or_path);
    }
  const std::filesystem::path path(name_or_path);
  const std::string stem = path.stem().string();
  if (std::filesystem::exists(path)) return with_scale(load_config_file(name_or_path), stem);
  if (const auto split = split_scale(stem)) {
    const std::filesystem::path unified = path.parent_path() / (split->first + path.extension().string());
    if (std::filesystem::exists(unified)) return with_scale(load_config_file(unified.string()), stem);
  }
  throw InputError(name_or_path, fmt::format("no such file, and not a built-in model (built-in: {})",
                                             fmt::join(builtin_model_names(), ", ")));
}

std::optional<bool> parse_channels_last(const std::string& value) {
  if (value == "auto") return std::nullopt;
  if (value == "on" || value == "off") return value == "on";
  throw InputError(fmt::format("--channels-last must be auto, on or off, got '{}'", value));
}

DetectionModel build_model(const std::string& name_or_path, const ModelOverrides& overrides) {
  std::string source;
  const nlohmann::json cfg = load_model_config(name_or_path, &source);
  return DetectionModel(cfg, source, overrides);
}

}  // namespace revkit
