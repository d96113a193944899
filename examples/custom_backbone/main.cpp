// A reversible backbone of your own in a downstream project: define its levels, register it, prove its
// memory modes against plain autograd, and take one training step.
#include <revkit/backbones/plugin_api.h>
#include <revkit/reversible/reversible_module.h>
#include <revkit/reversible/testing.h>
#include <torch/nn/modules/conv.h>
#include <torch/optim/sgd.h>

#include <cstdio>

namespace {

using revkit::reversible::MemoryMode;

// F(lower, upper): a 3x3 conv of the lower level plus a 1x1 conv of the upper one.
class MixLevel : public revkit::reversible::ReversibleLevel {
 public:
  MixLevel(int64_t channels, bool has_upper) {
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3).padding(1)));
    if (has_upper) up = register_module("up", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 1)));
  }
  at::Tensor forward(const at::Tensor& lower, const at::Tensor& upper) override {
    at::Tensor y = at::gelu(conv->forward(lower));
    return upper.defined() && up ? y + up->forward(upper) : y;
  }
  torch::nn::Conv2d conv{nullptr}, up{nullptr};
};

// Two levels at one resolution, `columns` columns, alpha learned per channel; one feature map at stride 4.
class TinyRevImpl : public revkit::Backbone, public revkit::reversible::ReversibleModule {
 public:
  TinyRevImpl(int64_t channels, int64_t columns, MemoryMode mode) : channels_(channels) {
    options_ = revkit::reversible::ColumnOptions(mode);
    stem = register_module("stem", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, channels, 4).stride(4)));
    for (int64_t j = 0; j < columns; ++j)
      for (int64_t k = 0; k < 2; ++k) {
        const std::string name = "c" + std::to_string(j) + "_l" + std::to_string(k);
        const at::Tensor alpha = register_parameter(name + "_alpha", at::ones({1, channels, 1, 1}));
        grid_.add_level(*this, name, std::make_shared<MixLevel>(channels, j > 0 && k == 0), j, alpha);
      }
  }
  at::Tensor column_input(const at::Tensor& x) override { return stem->forward(x); }
  std::vector<at::Tensor> forward(const at::Tensor& x) override { return {run_columns(column_input(x)).back()}; }
  std::vector<int64_t> out_channels() const override { return {channels_}; }
  std::vector<int64_t> strides() const override { return {4}; }
  torch::nn::Conv2d stem{nullptr};

 private:
  int64_t channels_;
};

void register_tinyrev(revkit::PluginRegistrar* registrar) {
  registrar->add_backbone("tinyrev", "two-level reversible toy backbone from the custom_backbone example",
                          [](const revkit::BackboneSettings& s) -> std::shared_ptr<revkit::Backbone> {
                            return std::make_shared<TinyRevImpl>(16, s.columns.value_or(4),
                                                                 s.memory_mode.value_or(MemoryMode::Full));
                          });
}

const RevkitPlugin kTinyRev = {REVKIT_PLUGIN_API_VERSION, "tinyrev", "0.1", &register_tinyrev};

}  // namespace

// Built as a shared library instead, this entry point makes it loadable with `revkit --plugin`.
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() { return &kTinyRev; }

int main() {
  revkit::register_plugin(kTinyRev, "tinyrev");
  revkit::BackboneSettings settings;
  settings.columns = 6;
  auto model = revkit::backbone_registry().factory("tinyrev")(settings);
  model->to(at::kDouble);

  // 1. Every reversible memory mode against plain autograd, tensor by tensor.
  at::manual_seed(0);
  const at::Tensor x = at::randn({2, 3, 32, 32}, at::kDouble);
  bool ok = true;
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
    revkit::reversible::ModeComparison cmp;
    cmp.mode = mode;
    const auto report = revkit::reversible::compare_memory_modes(
        *model, [&](const at::Tensor& in) { return model->forward(in); }, x, cmp);
    const double tol = revkit::reversible::default_tolerance(mode, at::kDouble);
    std::printf("%-6s worst relative difference %.3e (tolerance %.0e) at %s\n",
                revkit::reversible::to_string(mode).c_str(), report.worst_overall(), tol,
                report.worst("parameter gradients").name.c_str());
    ok = ok && report.within(tol);
  }

  // 2. One training step in full mode: activations inside the columns are rebuilt, not stored.
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  auto loss_of = [&] { return model->forward(x)[0].pow(2).mean(); };
  const double before = loss_of().item<double>();
  sgd.zero_grad();
  loss_of().backward();
  sgd.step();
  const double after = loss_of().item<double>();
  std::printf("one SGD step: loss %.6f -> %.6f\n", before, after);
  ok = ok && after < before;
  std::printf(ok ? "custom backbone: ok\n" : "custom backbone: FAILED\n");
  return ok ? 0 : 1;
}
