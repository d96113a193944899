// Row factories for the built-in layers, with Ultralytics' argument conventions, registered in one place.
#include "models/layers.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "backbones/feature_maps.h"
#include "core/error.h"
#include "core/excerpt.h"
#include "heads/detect.h"
#include "heads/dfl_detect.h"
#include "necks/blocks.h"

namespace revkit {

void LayerArgs::fail(const std::string& problem) const {
  throw InputError(source, fmt::format("row {} ({}): {}", row, type, problem));
}

void LayerArgs::expect_count(size_t min, size_t max) const {
  if (args.size() < min || args.size() > max)
    fail(min == max ? fmt::format("expected {} argument{}, got {}", min, min == 1 ? "" : "s", args.size())
                    : fmt::format("expected {} to {} arguments, got {}", min, max, args.size()));
}

namespace {
template <typename T>
T typed(const LayerArgs& a, size_t i, const std::optional<T>& fallback, const char* what, bool ok, const char* kind) {
  if (!a.has(i)) {
    if (fallback) return *fallback;
    a.fail(fmt::format("argument {} ({}) is required", i, what));
  }
  if (!ok) a.fail(fmt::format("argument {} ({}) must be {}, got {}", i, what, kind, json_excerpt(a.args[i])));
  return a.args[i].get<T>();
}
}  // namespace

int64_t LayerArgs::integer(size_t i, std::optional<int64_t> fallback, const char* what) const {
  return typed<int64_t>(*this, i, fallback, what, has(i) && fits_int64(args[i]), "an integer");
}
double LayerArgs::number(size_t i, std::optional<double> fallback, const char* what) const {
  return typed<double>(*this, i, fallback, what, has(i) && args[i].is_number(), "a number");
}
bool LayerArgs::boolean(size_t i, std::optional<bool> fallback, const char* what) const {
  return typed<bool>(*this, i, fallback, what, has(i) && args[i].is_boolean(), "true or false");
}
std::string LayerArgs::text(size_t i, std::optional<std::string> fallback, const char* what) const {
  return typed<std::string>(*this, i, fallback, what, has(i) && args[i].is_string(), "a string");
}

int64_t make_divisible(double x, int64_t divisor) {
  return static_cast<int64_t>(std::ceil(x / static_cast<double>(divisor))) * divisor;
}

int64_t LayerArgs::scaled_channels(int64_t c) const {
  if (c <= 0) fail(fmt::format("output channels must be positive, got {}", c));
  if (max_channels > 0) c = std::min(c, max_channels);
  return make_divisible(static_cast<double>(c) * width_multiple, 8);
}

namespace {

int64_t single_input(const LayerArgs& a) {
  if (a.in_channels.size() != 1) a.fail(fmt::format("takes one input, got {} (from a list)", a.in_channels.size()));
  return a.in_channels[0];
}

// A single-input module, repeated `repeats` times in sequence as Ultralytics' nn.Sequential(*(m(*args) ...)).
template <typename Holder, typename Make>
BuiltLayer repeated(const LayerArgs& a, int64_t c2, std::string args_text, Make make) {
  BuiltLayer built;
  built.out_channels = {c2};
  built.args_text = std::move(args_text);
  if (a.repeats <= 1) {
    Holder m = make(single_input(a));
    built.module = m.ptr();
    built.forward = [m](const std::vector<at::Tensor>& in) mutable {
      return std::vector<at::Tensor>{m->forward(in.at(0))};
    };
    return built;
  }
  torch::nn::Sequential seq;
  int64_t c = single_input(a);
  for (int64_t i = 0; i < a.repeats; ++i) {
    seq->push_back(make(c));
    c = c2;
  }
  built.module = seq.ptr();
  built.forward = [seq](const std::vector<at::Tensor>& in) mutable {
    return std::vector<at::Tensor>{seq->forward(in.at(0))};
  };
  return built;
}

BuiltLayer build_conv(const LayerArgs& a) {
  a.expect_count(1, 7);
  const int64_t c2 = a.scaled_channels(a.integer(0, {}, "output channels"));
  const int64_t k = a.integer(1, 1, "kernel"), s = a.integer(2, 1, "stride"), p = a.integer(3, -1, "padding");
  const int64_t g = a.integer(4, 1, "groups"), d = a.integer(5, 1, "dilation");
  const bool act = a.boolean(6, true, "activation");
  if (k <= 0 || s <= 0 || g <= 0 || d <= 0) a.fail("kernel, stride, groups and dilation must be positive");
  if (a.has(3) && p < 0) a.fail(fmt::format("padding must be 0 or more (or null: autopad), got {}", p));
  return repeated<Conv>(a, c2, fmt::format("{}, {}, {}, {}", single_input(a), c2, k, s), [=](int64_t c1) {
    return Conv(ConvOptions(c1, c2, k).stride(s).padding(p).groups(g).dilation(d).act(act));
  });
}

BuiltLayer build_bottleneck(const LayerArgs& a) {
  a.expect_count(1, 4);
  const int64_t c2 = a.scaled_channels(a.integer(0, {}, "output channels"));
  const bool shortcut = a.boolean(1, true, "shortcut");
  const int64_t g = a.integer(2, 1, "groups");
  const double e = a.number(3, 0.5, "expansion");
  return repeated<Bottleneck>(a, c2, fmt::format("{}, {}, {}", single_input(a), c2, shortcut ? "True" : "False"),
                              [=](int64_t c1) { return Bottleneck(c1, c2, shortcut, g, e); });
}

// C3 and C2f take their repeats as an argument rather than being repeated.
template <typename Holder>
BuiltLayer build_csp(const LayerArgs& a, bool default_shortcut) {
  a.expect_count(1, 4);
  const int64_t c1 = single_input(a);
  const int64_t c2 = a.scaled_channels(a.integer(0, {}, "output channels"));
  const bool shortcut = a.boolean(1, default_shortcut, "shortcut");
  const int64_t g = a.integer(2, 1, "groups");
  const double e = a.number(3, 0.5, "expansion");
  Holder m(c1, c2, a.repeats, shortcut, g, e);
  BuiltLayer built;
  built.module = m.ptr();
  built.forward = [m](const std::vector<at::Tensor>& in) mutable {
    return std::vector<at::Tensor>{m->forward(in.at(0))};
  };
  built.out_channels = {c2};
  built.args_text = fmt::format("{}, {}, {}{}", c1, c2, a.repeats, shortcut ? "" : ", False");
  return built;
}

BuiltLayer build_sppf(const LayerArgs& a) {
  a.expect_count(1, 2);
  const int64_t c2 = a.scaled_channels(a.integer(0, {}, "output channels"));
  const int64_t k = a.integer(1, 5, "pool kernel");
  if (k <= 0 || k % 2 == 0) a.fail(fmt::format("pool kernel must be odd and positive, got {}", k));
  return repeated<SPPF>(a, c2, fmt::format("{}, {}, {}", single_input(a), c2, k),
                        [=](int64_t c1) { return SPPF(c1, c2, k); });
}

BuiltLayer build_concat(const LayerArgs& a) {
  a.expect_count(0, 1);
  const int64_t d = a.integer(0, 1, "dimension");
  if (d != 1) a.fail(fmt::format("only channel concatenation (dimension 1) is supported, got {}", d));
  if (a.in_channels.size() < 2) a.fail("needs at least two inputs (a list in `from`)");
  Concat m(d);
  BuiltLayer built;
  built.module = m.ptr();
  built.forward = [m](const std::vector<at::Tensor>& in) mutable { return std::vector<at::Tensor>{m->forward(in)}; };
  int64_t c2 = 0;
  for (int64_t c : a.in_channels) c2 += c;
  built.out_channels = {c2};
  built.args_text = fmt::format("{}", d);
  return built;
}

BuiltLayer build_upsample(const LayerArgs& a) {
  a.expect_count(0, 3);
  if (a.has(0)) a.fail("a fixed output size is not supported: use [None, scale, mode]");
  const double scale = a.number(1, 2.0, "scale factor");
  const std::string mode = a.text(2, std::string("nearest"), "mode");
  if (mode != "nearest" && mode != "bilinear") a.fail("mode must be 'nearest' or 'bilinear', got '" + mode + "'");
  if (scale <= 0) a.fail("scale factor must be positive");
  const int64_t c = single_input(a);
  return repeated<Upsample>(a, c, fmt::format("None, {}, '{}'", scale, mode),
                            [=](int64_t) { return Upsample(scale, mode); });
}

// YOLOv5's default anchors (P3/8, P4/16, P5/32), used when a config gives only an anchor count.
const std::vector<std::vector<double>> kDefaultAnchors = {
    {10, 13, 16, 30, 33, 23}, {30, 61, 62, 45, 59, 119}, {116, 90, 156, 198, 373, 326}};

int64_t head_classes(const LayerArgs& a) {
  const int64_t nc = a.integer(0, {}, "number of classes");
  if (nc <= 0) a.fail(fmt::format("number of classes must be positive, got {}", nc));
  return nc;
}

BuiltLayer head_layer(const std::shared_ptr<DetectionHead>& head, int64_t out_channels, std::string args_text) {
  BuiltLayer built;
  built.module = head;
  built.head = head;
  built.forward = [head](const std::vector<at::Tensor>& in) { return head->forward(in); };
  built.out_channels = {out_channels};
  built.args_text = std::move(args_text);
  return built;
}

// Ultralytics 8's row: [nc].
BuiltLayer build_dfl_detect(const LayerArgs& a) {
  a.expect_count(1, 1);
  const int64_t nc = head_classes(a);
  auto head = std::make_shared<DflDetectImpl>(DflDetectOptions(nc, a.in_channels));
  return head_layer(head, nc + 4 * head->reg_max,
                    fmt::format("{}, {} levels, reg_max {}", nc, a.in_channels.size(), head->reg_max));
}

// YOLOv5's row: [nc, anchors].
BuiltLayer build_anchor_detect(const LayerArgs& a) {
  a.expect_count(2, 2);
  const int64_t nc = head_classes(a);
  std::vector<std::vector<double>> anchors;
  const auto& spec = a.args[1];
  const size_t levels = a.in_channels.size();
  if (spec.is_number_integer()) {
    if (spec.get<int64_t>() != 3 || levels != 3)
      a.fail("an anchor count needs three levels of three anchors (YOLOv5's defaults); give pixel pairs instead");
    anchors = kDefaultAnchors;
  } else if (spec.is_array()) {
    for (const auto& level : spec) {
      if (!level.is_array() || level.empty() || level.size() % 2)
        a.fail("each anchor level must be a list of pixel pairs w, h");
      std::vector<double> v;
      for (const auto& x : level) {
        if (!x.is_number() || x.get<double>() <= 0)
          a.fail("anchor sizes must be positive numbers, got " + json_excerpt(x));
        v.push_back(x.get<double>());
      }
      if (!anchors.empty() && v.size() != anchors[0].size())
        a.fail("every anchor level needs the same number of anchors");
      anchors.push_back(v);
    }
  } else {
    a.fail("anchors must be a list of pixel-pair lists or an integer count, got " + json_excerpt(spec));
  }
  if (anchors.size() != levels) a.fail(fmt::format("{} anchor levels for {} inputs in `from`", anchors.size(), levels));
  auto head = std::make_shared<DetectImpl>(DetectOptions(nc, anchors, a.in_channels));
  return head_layer(head, nc + 5, fmt::format("{}, {} levels x {} anchors", nc, anchors.size(), anchors[0].size() / 2));
}

// The two packages spell their heads alike: YOLOv5's rows give anchors, Ultralytics 8's do not.
BuiltLayer build_detect(const LayerArgs& a) {
  if (a.repeats != 1) a.fail("a detection head cannot be repeated (number must be 1)");
  return a.args.size() == 1 ? build_dfl_detect(a) : build_anchor_detect(a);
}

LayerFactory backbone_row(const std::string& name) {
  return [name](const LayerArgs& a) {
    if (a.row != 0) a.fail("a backbone with several outputs must be row 0");
    a.expect_count(0, 0);
    if (a.in_channels != std::vector<int64_t>{3}) a.fail("a backbone takes the 3-channel image (from -1)");
    if (a.repeats != 1) a.fail("a backbone cannot be repeated (number must be 1)");
    std::shared_ptr<Backbone> backbone = make_backbone(name, a.backbone);
    try {
      check_declared_maps(name, *backbone);
    } catch (const InputError& e) {
      a.fail(e.what());
    }
    const size_t maps = backbone->out_channels().size();
    if (maps > 5) a.fail(fmt::format("returns {} feature maps; a config row index space holds at most 5", maps));
    BuiltLayer built;
    built.module = backbone;
    built.forward = [backbone, name](const std::vector<at::Tensor>& in) {
      return checked_forward(name, *backbone, in.at(0));
    };
    built.out_channels = backbone->out_channels();
    built.backbone = true;
    return built;
  };
}

void register_builtin_layers(Registry<LayerFactory>& r) {
  r.add("Conv", "Conv2d + BatchNorm2d + SiLU, autopad; args [c2, k=1, s=1, p=None, g=1, d=1, act=True]", build_conv);
  r.add("Bottleneck", "residual 1x1 + 3x3 Conv pair; args [c2, shortcut=True, g=1, e=0.5]", build_bottleneck);
  r.add("C3", "CSP bottleneck with three convs (YOLOv5); args [c2, shortcut=True, g=1, e=0.5], repeats inside",
        [](const LayerArgs& a) { return build_csp<C3>(a, true); });
  r.add("C2f", "CSP bottleneck with two convs, all branches kept (YOLOv8); args [c2, shortcut=False, g=1, e=0.5]",
        [](const LayerArgs& a) { return build_csp<C2f>(a, false); });
  r.add("SPPF", "spatial pyramid pooling, fast: three chained max pools; args [c2, k=5]", build_sppf);
  r.add("Concat", "concatenates its `from` inputs along channels; args [1]", build_concat);
  r.add("nn.Upsample", "nearest or bilinear upsampling; args [None, scale=2, mode='nearest']", build_upsample);
  r.add("Detect",
        "detection head: [nc, anchors] YOLOv5's anchor-based one; [nc] Ultralytics 8's anchor-free one with DFL "
        "box regression (YOLOv8, reg_max 16)",
        build_detect);
}

}  // namespace

Registry<LayerFactory>& layer_registry() {
  static Registry<LayerFactory>* registry = [] {
    auto* r = new Registry<LayerFactory>("layer");
    register_builtin_layers(*r);
    return r;
  }();
  return *registry;
}

LayerFactory find_layer(const std::string& type) {
  if (layer_registry().contains(type)) return layer_registry().factory(type);
  if (backbone_registry().contains(type)) return backbone_row(type);
  throw UnknownNameError(fmt::format("unknown layer '{}' (layers: {}; backbones: {}; a plugin's backbone needs the "
                                     "plugin loaded, with --plugin or REVKIT_PLUGINS)",
                                     printable(type, 80), fmt::join(layer_registry().names(), ", "),
                                     fmt::join(backbone_registry().names(), ", ")));
}

}  // namespace revkit
