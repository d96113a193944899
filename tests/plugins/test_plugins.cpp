// Plugins that fail in the ways the loader must report: built only for tests.
#include "backbones/plugin_api.h"

#ifdef REVKIT_TEST_BAD_VERSION
static void register_nothing(revkit::PluginRegistrar*) {}
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  static const RevkitPlugin info = {999, "from-the-future", "9.9", &register_nothing};
  return &info;
}
#endif

#ifdef REVKIT_TEST_DUPLICATE
static void register_taken_name(revkit::PluginRegistrar* r) {
  r->add_backbone("revcol_tiny", "a second revcol_tiny",
                  [](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> { return nullptr; });
}
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  static const RevkitPlugin info = {REVKIT_PLUGIN_API_VERSION, "impostor", "0.1", &register_taken_name};
  return &info;
}
#endif

#ifdef REVKIT_TEST_FAULTY_FACTORIES
#include <ATen/ATen.h>

#include <stdexcept>

#include "reversible/reversible_module.h"

// lower * weight: the one level of ReversiblePooledBackbone's grid.
class ScaleLevel : public revkit::reversible::ReversibleLevel {
 public:
  ScaleLevel() { weight_ = register_parameter("weight", at::ones({1})); }
  at::Tensor forward(const at::Tensor& lower, const at::Tensor&) override { return lower * weight_; }

 private:
  at::Tensor weight_;
};

// Declares maps of 6, 12, 24 and 48 channels at strides 4, 8, 16 and 32 (pooled images, channels repeated), and
// returns them as declared or with one channel count, one size or one map wrong. No parameter, no reversible part.
class PooledBackbone : public revkit::Backbone {
 public:
  enum class Wrong { Nothing, Channels, Stride, MissingMap };
  explicit PooledBackbone(Wrong wrong) : wrong_(wrong) {}
  std::vector<at::Tensor> forward(const at::Tensor& x) override {
    std::vector<at::Tensor> maps;
    for (size_t i = 0; i < 4; ++i) {
      int64_t stride = strides()[i], repeats = out_channels()[i] / 3;
      if (i == 3 && wrong_ == Wrong::Channels) repeats /= 2;
      if (i == 3 && wrong_ == Wrong::Stride) stride /= 2;
      if (i == 3 && wrong_ == Wrong::MissingMap) break;
      maps.push_back(at::avg_pool2d(x, stride).repeat({1, repeats, 1, 1}));
    }
    return maps;
  }
  std::vector<int64_t> out_channels() const override { return {6, 12, 24, 48}; }
  std::vector<int64_t> strides() const override { return {4, 8, 16, 32}; }

 private:
  Wrong wrong_;
};

// The same maps from the image after a reversible grid of two one-level columns (so that check --backbone reaches
// them), or with the grid left empty.
class ReversiblePooledBackbone : public PooledBackbone, public revkit::reversible::ReversibleModule {
 public:
  ReversiblePooledBackbone(Wrong wrong, bool empty_grid) : PooledBackbone(wrong) {
    if (empty_grid) return;
    for (int64_t column = 0; column < 2; ++column)
      grid_.add_level(*this, "level" + std::to_string(column), std::make_shared<ScaleLevel>(), column,
                      register_parameter("alpha" + std::to_string(column), at::ones({1})));
  }
  at::Tensor column_input(const at::Tensor& x) override { return x; }
  std::vector<at::Tensor> forward(const at::Tensor& x) override { return PooledBackbone::forward(run_columns(x)[0]); }
};

static void register_faulty(revkit::PluginRegistrar* r) {
  using Wrong = PooledBackbone::Wrong;
  for (auto [name, wrong] :
       {std::pair{"wrong_channels_backbone", Wrong::Channels}, std::pair{"wrong_stride_backbone", Wrong::Stride},
        std::pair{"missing_map_backbone", Wrong::MissingMap}})
    r->add_backbone(name, "returns other feature maps than it declares",
                    [wrong = wrong](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> {
                      return std::make_shared<ReversiblePooledBackbone>(wrong, /*empty_grid=*/false);
                    });
  r->add_backbone("pooled_backbone", "the maps it declares, from no parameter and no reversible part",
                  [](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> {
                    return std::make_shared<PooledBackbone>(Wrong::Nothing);
                  });
  r->add_backbone("empty_grid_backbone", "a reversible part whose column grid has no level",
                  [](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> {
                    return std::make_shared<ReversiblePooledBackbone>(Wrong::Nothing, /*empty_grid=*/true);
                  });
  r->add_backbone("null_backbone", "a factory that returns no backbone",
                  [](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> { return nullptr; });
  r->add_backbone("throwing_backbone", "a factory that throws",
                  [](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> {
                    throw std::runtime_error("failed on purpose");
                  });
}
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  static const RevkitPlugin info = {REVKIT_PLUGIN_API_VERSION, "faulty", "0.1", &register_faulty};
  return &info;
}
#endif

#ifdef REVKIT_TEST_THROWING_REGISTRATION
#include <stdexcept>
static void register_throwing(revkit::PluginRegistrar*) { throw std::runtime_error("registration failed on purpose"); }
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  static const RevkitPlugin info = {REVKIT_PLUGIN_API_VERSION, "thrower", "0.1", &register_throwing};
  return &info;
}
#endif
