#include "backbones/revcol.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "core/weights.h"

#include <set>

#include "core/memory_meter.h"
#include "core/safetensors.h"
#include "gpu.h"
#include "reversible/reversible_module.h"
#include "reversible/testing.h"

using namespace revkit;

TEST_CASE("the seed's five variants have the seed's parameter counts") {
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"tiny", 29942144}, {"small", 60054400}, {"base", 138038256}, {"large", 272068352}, {"xlarge", 832010816}};
  for (const auto& [name, count] : expected) {
    INFO(name);
    RevCol model(revcol_variant(name));
    CHECK(count_parameters(*model) == count);
  }
  const auto small = revcol_variant("small");
  CHECK(small.columns() == 8);
  CHECK(small.drop_path() == doctest::Approx(0.3));
  CHECK(revcol_variant("base").channels() == std::vector<int64_t>{72, 144, 288, 576});
  CHECK_THROWS_WITH_AS(revcol_variant("huge"), doctest::Contains("unknown RevCol variant 'huge'"), UnknownNameError);
}

TEST_CASE("parameter names equal the seed's state_dict keys") {
  const auto fixture = read_safetensors(std::string(REVKIT_TEST_FIXTURES) + "/revcol_mini_f64.safetensors");
  std::set<std::string> seed_names;
  for (const auto& [name, t] : fixture.tensors)
    if (name.rfind("param/", 0) == 0) seed_names.insert(name.substr(6));
  RevCol model(RevColOptions({8, 16, 24, 32}, {1, 1, 2, 1}, 3));
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) {
    names.insert(p.key());
    CHECK(p.value().sizes() == fixture.tensors.at("param/" + p.key()).sizes());
  }
  CHECK(names == seed_names);
  CHECK(names.count("subnet1.level0.fusion.up.channel_reschedule.0.weight") == 1);
  CHECK(names.count("subnet0.level0.fusion.up.channel_reschedule.0.weight") == 0);  // no up in the first column
}

TEST_CASE("initialisation as the seed: truncated normal 0.02 weights, zero biases, alpha 0.5, gamma 1e-6") {
  at::manual_seed(0);
  RevCol model(revcol_variant("tiny").columns(2));
  for (const auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    const at::Tensor& t = p.value();
    INFO(name);
    if (name.find(".alpha") != std::string::npos) {
      CHECK(at::all(t == 0.5).item<bool>());
    } else if (name.size() > 6 && name.substr(name.size() - 6) == ".gamma") {
      CHECK(at::allclose(t, at::full_like(t, 1e-6)));
    } else if (name.find("norm") != std::string::npos || name == "stem.1.weight" ||
               name.find("down.1.") != std::string::npos || name.find("channel_reschedule.1.") != std::string::npos) {
      // LayerNorm: ones and zeros
      CHECK(at::all(t == (name.substr(name.size() - 4) == "bias" ? 0.0 : 1.0)).item<bool>());
    } else if (name.substr(name.size() - 4) == "bias") {
      CHECK(at::all(t == 0).item<bool>());
    } else if (t.numel() > 10000) {
      CHECK(t.std().item<double>() == doctest::Approx(0.02).epsilon(0.05));
      CHECK(t.abs().max().item<double>() <= 2.0);
    }
  }
}

TEST_CASE("the columns' convolution weights are channels last, as their activations, and stay so when loaded") {
  at::manual_seed(0);
  RevCol model(RevColOptions({8, 16, 24, 32}, {1, 1, 1, 1}, 2));
  int64_t convolutions = 0;
  for (const auto& p : model->named_parameters()) {
    if (p.value().dim() != 4 || p.key().find(".alpha") != std::string::npos) continue;
    INFO(p.key());
    // The stem reads the images in whatever layout they come: its weight is left as built.
    const bool in_columns = p.key().rfind("subnet", 0) == 0;
    CHECK(p.value().is_contiguous(at::MemoryFormat::ChannelsLast) == in_columns);
    convolutions += in_columns;
  }
  CHECK(convolutions == 2 * (3 + 4));  // per column: three down-samplings and four depthwise convolutions

  // The same weights in NCHW give the same features and gradients: only the layout differs.
  RevCol nchw(RevColOptions({8, 16, 24, 32}, {1, 1, 1, 1}, 2));
  {
    at::NoGradGuard no_grad;
    auto from = model->named_parameters();
    for (auto& p : nchw->named_parameters()) {
      p.value().set_data(from[p.key()].contiguous());
      if (p.value().dim() == 4) REQUIRE(p.value().is_contiguous());
    }
  }
  const at::Tensor x = at::randn({2, 3, 64, 64});
  const auto a = model->forward(x), b = nchw->forward(x);
  at::stack({a[3].sum(), a[0].sum()}).sum().backward();
  at::stack({b[3].sum(), b[0].sum()}).sum().backward();
  for (size_t k = 0; k < 4; ++k) CHECK(at::allclose(a[k], b[k], 1e-5, 1e-6));
  auto nchw_params = nchw->named_parameters();
  for (const auto& p : model->named_parameters()) {
    INFO(p.key());
    REQUIRE(p.value().grad().defined() == nchw_params[p.key()].grad().defined());
    if (p.value().grad().defined()) CHECK(at::allclose(p.value().grad(), nchw_params[p.key()].grad(), 1e-4, 1e-6));
  }

  // Loading weights copies into the parameters: the layout stays.
  std::map<std::string, at::Tensor> saved;
  for (const auto& p : nchw->named_parameters()) saved[p.key()] = p.value().detach().contiguous();
  for (const auto& b : nchw->named_buffers()) saved[b.key()] = b.value().detach().contiguous();
  load_named_tensors(*model, saved, "nchw.safetensors");
  for (const auto& p : model->named_parameters())
    if (p.key().rfind("subnet", 0) == 0 && p.value().dim() == 4 && p.key().find(".alpha") == std::string::npos)
      CHECK(p.value().is_contiguous(at::MemoryFormat::ChannelsLast));
}

TEST_CASE("four feature maps at strides 4 to 32, known without a forward") {
  RevCol model(RevColOptions({8, 16, 24, 32}, {1, 1, 1, 1}, 2));
  CHECK(model->out_channels() == std::vector<int64_t>{8, 16, 24, 32});
  CHECK(model->strides() == std::vector<int64_t>{4, 8, 16, 32});
  CHECK(model->size_divisor() == 32);
  const auto outs = model->forward(at::randn({2, 3, 64, 96}));
  REQUIRE(outs.size() == 4);
  for (size_t k = 0; k < 4; ++k) {
    CHECK(outs[k].size(1) == model->out_channels()[k]);
    CHECK(outs[k].size(2) == 64 / model->strides()[k]);
    CHECK(outs[k].size(3) == 96 / model->strides()[k]);
  }
}

TEST_CASE("an input whose sides are not multiples of 32 is a clear error") {
  RevCol model(RevColOptions({8, 16, 24, 32}, {1, 1, 1, 1}, 1));
  CHECK_THROWS_WITH(model->forward(at::randn({1, 3, 64, 48})),
                    doctest::Contains("RevCol: input height and width must be multiples of 32, got 64x48"));
  CHECK_THROWS_WITH(model->forward(at::randn({1, 4, 64, 64})),
                    doctest::Contains("expected input of shape [N, 3, H, W]"));
}

TEST_CASE("drop-path rates rise linearly over the blocks, as the seed's linspace") {
  RevCol model(RevColOptions({8, 16, 24, 32}, {1, 1, 2, 1}, 1).drop_path(0.4));
  std::vector<double> rates;
  for (const auto& m : model->modules())
    if (auto* block = m->as<ConvNextBlock>()) rates.push_back(block->drop_path);
  REQUIRE(rates.size() == 5);
  for (size_t i = 0; i < rates.size(); ++i) CHECK(rates[i] == doctest::Approx(0.1 * i));
}

TEST_CASE("the backbone registry has the five variants, with settings applied") {
  const auto names = backbone_registry().names();
  for (const char* n : {"revcol_tiny", "revcol_small", "revcol_base", "revcol_large", "revcol_xlarge"})
    CHECK(std::find(names.begin(), names.end(), n) != names.end());
  BackboneSettings settings;
  settings.columns = 2;
  settings.memory_mode = reversible::MemoryMode::Full;
  settings.recompute_chunks = 3;
  auto model = backbone_registry().factory("revcol_tiny")(settings);
  auto* rev = dynamic_cast<reversible::ReversibleModule*>(model.get());
  REQUIRE(rev);
  CHECK(rev->column_grid().columns() == 2);
  CHECK(rev->column_options().memory_mode() == reversible::MemoryMode::Full);
  CHECK(rev->column_options().recompute_chunks() == 3);
  CHECK_FALSE(backbone_registry().at("revcol_tiny").description.empty());
}

REVKIT_GPU_TEST_CASE("GPU: RevCol-T with drop path on CUDA: every mode equals plain autograd, and saves memory") {
  REQUIRE(at::hasCUDA());
  const c10::Device cuda(c10::kCUDA, 0);
  BackboneSettings settings;
  settings.columns = 4;
  settings.drop_path = 0.2;  // masks drawn on the CUDA generator, replayed in the recompute
  at::manual_seed(0);
  auto model = backbone_registry().factory("revcol_tiny")(settings);
  model->to(cuda);
  model->train();
  const at::Tensor x = at::randn({2, 3, 224, 224}, at::TensorOptions().device(cuda));
  auto forward = [&](const at::Tensor& in) { return model->forward(in); };
  std::map<reversible::MemoryMode, int64_t> activation;
  for (auto mode : {reversible::MemoryMode::Off, reversible::MemoryMode::Column, reversible::MemoryMode::Full}) {
    if (mode != reversible::MemoryMode::Off) {
      reversible::ModeComparison cmp;
      cmp.mode = mode;
      const auto report = reversible::compare_memory_modes(*model, forward, x, cmp);
      INFO("mode ", reversible::to_string(mode), ": worst ", report.worst_overall());
      CHECK(report.rng_stream_equal);
      CHECK(report.worst_overall() <= reversible::default_tolerance(mode, at::kFloat));
    }
    reversible::set_memory_mode(*model, mode);
    model->zero_grad();
    ActivationMeter meter(cuda);
    at::Tensor loss = at::zeros({}, x.options());
    for (const auto& o : model->forward(x)) loss = loss + o.pow(2).mean();
    loss.backward();
    activation[mode] = meter.peak_bytes();
    MESSAGE(reversible::to_string(mode) << ": activation memory " << activation[mode] / 1048576.0 << " MB");
  }
  CHECK(activation[reversible::MemoryMode::Column] < activation[reversible::MemoryMode::Off]);
  CHECK(activation[reversible::MemoryMode::Full] < activation[reversible::MemoryMode::Column]);
}
