// revkit info: a model's layer table, parameters, GFLOPs and output shapes; revkit list: every layer and backbone.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "core/flops.h"
#include "core/logging.h"
#include "core/memory_meter.h"
#include "core/weights.h"
#include "models/detection_model.h"
#include "plugins/loader.h"

namespace revkit::cli {
namespace {

struct InfoArgs {
  std::string model, memory_mode, device = "cpu";
  int64_t nc = 0, imgsz = 640, batch = 1;
  bool json = false, memory = false;
};

// What one training step of the model holds on `device`, in one memory mode.
struct StepMemory {
  std::string memory_mode;
  int64_t params_bytes = 0;      // weights and buffers
  int64_t activation_bytes = 0;  // peak during forward + backward above what was held before it
};

// One training step (forward, loss = sum over the head's maps of their mean square, backward) after a warm-up
// step, so that gradients are allocated and the measured peak is activations alone; on CUDA from the caching
// allocator's statistics, on the CPU from revkit's CPU allocator.
StepMemory measure_step(const InfoArgs& a, const ModelOverrides& overrides, c10::Device device, int64_t imgsz) {
  at::manual_seed(0);
  DetectionModel model = build_model(a.model, overrides);
  model->to(device);
  model->train();
  auto step = [&](const at::Tensor& x) {
    at::Tensor loss = at::zeros({}, x.options());
    for (const auto& o : model->forward_raw(x)) loss = loss + o.pow(2).mean();
    loss.backward();
  };
  const at::Tensor x = at::randn({a.batch, 3, imgsz, imgsz}, device);
  step(x);
  StepMemory m;
  for (const auto& t : model->parameters()) m.params_bytes += t.numel() * t.element_size();
  for (const auto& t : model->buffers()) m.params_bytes += t.numel() * t.element_size();
  synchronize(device);
  ActivationMeter meter(device);
  step(x);
  synchronize(device);
  m.activation_bytes = meter.peak_bytes();
  return m;
}

// The memory modes --memory measures: the one asked for, else every mode when the backbone is reversible.
std::vector<std::string> modes_to_measure(const InfoArgs& a, const DetectionModelImpl& model) {
  if (!a.memory_mode.empty()) return {a.memory_mode};
  bool reversible = false;
  for (const auto& l : model.layers()) reversible = reversible || l.backbone;
  if (!reversible) return {""};
  return {"off", "column", "full"};
}

int info(const InfoArgs& a) {
  ModelOverrides overrides;
  if (a.nc != 0) {
    if (a.nc < 0) throw InputError(fmt::format("--nc must be positive, got {}", a.nc));
    overrides.num_classes = a.nc;
  }
  if (!a.memory_mode.empty()) overrides.backbone.memory_mode = reversible::parse_memory_mode(a.memory_mode);
  check_image_size_option(a.imgsz);
  if (a.memory && a.batch < 1) throw InputError(fmt::format("--batch must be positive, got {}", a.batch));
  // The device before the seed: seeding asks LibTorch about CUDA, which must be loaded first when wanted.
  const std::optional<c10::Device> memory_device =
      a.memory ? std::optional<c10::Device>(parse_device(a.device)) : std::nullopt;
  at::manual_seed(0);
  DetectionModel model = build_model(a.model, overrides);
  const int64_t imgsz = model->checked_image_size(a.imgsz);
  const int64_t params = count_parameters(*model);
  std::vector<at::Tensor> outputs;
  int64_t flops = 0;
  {
    // The head's raw maps, as in training, from one image: in eval mode, where batch norm takes one value per
    // channel (a 1x1 map, at a small --imgsz) as well as many, with the same operations.
    at::NoGradGuard no_grad;
    model->eval();
    const at::Tensor images = at::zeros({1, 3, imgsz, imgsz});
    flops = count_flops([&] { outputs = model->forward_raw(images); });
  }
  const double gflops = static_cast<double>(flops) / 1e9;

  std::vector<StepMemory> memory;
  if (a.memory) {
    const c10::Device device = *memory_device;
    check_training_batch(*model, imgsz, model->size_divisor(), a.batch, fmt::format("--batch {}", a.batch));
    for (const auto& mode : modes_to_measure(a, *model)) {
      ModelOverrides o = overrides;
      if (!mode.empty()) o.backbone.memory_mode = reversible::parse_memory_mode(mode);
      StepMemory m = measure_step(a, o, device, imgsz);
      m.memory_mode = mode.empty() ? "plain" : mode;
      memory.push_back(m);
    }
  }
  auto mb = [](int64_t bytes) { return std::round(bytes / 1048576.0 * 10) / 10; };

  if (a.json) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : model->layers())
      layers.push_back({{"row", l.row},
                        {"position", l.position},
                        {"from", l.from},
                        {"repeats", l.repeats},
                        {"params", l.params},
                        {"type", l.type},
                        {"args", l.args},
                        {"out_channels", l.out_channels}});
    nlohmann::json shapes = nlohmann::json::array();
    for (const auto& o : outputs) shapes.push_back(o.sizes().vec());
    nlohmann::json j = {{"model", a.model},
                        {"params", params},
                        {"gflops", std::round(gflops * 1000) / 1000},
                        {"imgsz", imgsz},
                        {"outputs", shapes},
                        {"strides", model->strides()},
                        {"nc", model->num_classes()},
                        {"layers", layers}};
    if (a.memory) {
      nlohmann::json rows = nlohmann::json::array();
      for (const auto& m : memory)
        rows.push_back({{"memory_mode", m.memory_mode},
                        {"params_mb", mb(m.params_bytes)},
                        {"activation_mb", mb(m.activation_bytes)}});
      j["memory"] = {{"device", a.device}, {"batch", a.batch}, {"steps", rows}};
    }
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::cout << fmt::format("{:>4} {:>18} {:>3} {:>11}  {:<24} {}\n", "pos", "from", "n", "params", "type", "arguments");
  for (const auto& l : model->layers()) {
    const std::string pos = l.out_channels.size() > 1
                                ? fmt::format("{}-{}", l.position, l.position + l.out_channels.size() - 1)
                                : fmt::format("{}", l.position);
    std::cout << fmt::format("{:>4} {:>18} {:>3} {:>11}  {:<24} {}\n", pos, l.from_text, l.repeats, l.params, l.type,
                             l.args);
  }
  std::cout << fmt::format("{}: {} layers, {} parameters, {:.1f} GFLOPs at {}x{}\n", a.model, model->layers().size(),
                           params, gflops, imgsz, imgsz);
  for (size_t i = 0; i < outputs.size(); ++i)
    std::cout << fmt::format("output {}: {} (stride {})\n", i, outputs[i].sizes().vec(), model->strides()[i]);
  for (const auto& m : memory)
    std::cout << fmt::format(
        "memory ({}, training step, batch {} at {}x{}, {}): {:.1f} MB of weights and buffers, {:.1f} MB of "
        "activations\n",
        a.device, a.batch, imgsz, imgsz, m.memory_mode, mb(m.params_bytes), mb(m.activation_bytes));
  return 0;
}

}  // namespace

Command add_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  auto* cmd = app.add_subcommand("info", "a model's layer table, parameters, GFLOPs and output shapes");
  cmd->add_option("--model", a->model, "a model config (.yaml, .json) or a built-in name")->required();
  cmd->add_option("--nc", a->nc, "number of classes (default: the config's)");
  cmd->add_option("--imgsz", a->imgsz, "image side for GFLOPs and output shapes")->capture_default_str();
  cmd->add_option("--memory-mode", a->memory_mode, "off, column, full or auto for reversible backbones");
  cmd->add_flag("--memory", a->memory,
                "also measure one training step's memory: weights and activations, per memory mode for a reversible "
                "backbone (on CUDA from the caching allocator's statistics)");
  cmd->add_option("--batch", a->batch, "--memory: batch size")->capture_default_str();
  cmd->add_option("--device", a->device, "--memory: cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--json", a->json, "print one JSON object");
  return [a] { return info(*a); };
}

Command add_list(CLI::App& app) {
  app.add_subcommand("list", "every registered layer and backbone, and the built-in model configs");
  return [] {
    std::cout << "layers:\n";
    for (const auto& e : layer_registry().entries()) std::cout << fmt::format("  {:<16} {}\n", e.name, e.description);
    std::cout << "backbones (row 0 of a config; outputs take row positions 0-4):\n";
    for (const auto& e : backbone_registry().entries())
      std::cout << fmt::format("  {:<16} {}\n", e.name, e.description);
    std::cout << "built-in models:\n";
    for (const auto& name : builtin_model_names()) std::cout << "  " << name << "\n";
    const auto plugins = loaded_plugins();
    if (!plugins.empty()) std::cout << "plugins:\n";
    for (const auto& p : plugins)
      std::cout << fmt::format("  {} {} ({}): {}\n", p.name, p.version, p.path, fmt::join(p.backbones, ", "));
    return 0;
  };
}

}  // namespace revkit::cli
