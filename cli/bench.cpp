// revkit bench: median training-step time and activation memory of a backbone, comparable side by side with
// the seed's Python (bench_reference.py): one step = forward, loss = sum_k mean(c_k^2), backward.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "backbones/backbone.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/weights.h"
#include "core/tracking_allocator.h"
#include "reversible/reversible_module.h"

namespace revkit::cli {
namespace {

struct BenchArgs {
  std::string backbone = "revcol_tiny", memory_mode = "column";
  int64_t columns = 0, imgsz = 224, batch = 2, steps = 3, threads = 0, store_every = 0;
  double alpha_init = 0.5;
  bool json = false;
};

double max_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}

int bench(const BenchArgs& a) {
  if (a.threads > 0) at::set_num_threads(static_cast<int>(a.threads));
  BackboneArgs args;
  if (a.columns > 0) args.columns = a.columns;
  args.drop_path = 0.0;
  args.alpha_init = a.alpha_init;
  args.memory_mode = reversible::parse_memory_mode(a.memory_mode);
  args.store_every = a.store_every;
  const auto& entry = backbone_registry().at(a.backbone);
  at::manual_seed(0);
  TrackingAllocator::install();
  std::shared_ptr<Backbone> model = entry.factory(args);
  if (a.imgsz <= 0 || a.imgsz % model->size_divisor() != 0)
    throw InputError(fmt::format("--imgsz must be a positive multiple of {}, got {}", model->size_divisor(), a.imgsz));
  model->train();
  const int64_t params = count_parameters(*model);

  auto step = [&](const at::Tensor& x) {
    auto outs = model->forward(x);
    at::Tensor loss = at::zeros({});
    for (const auto& o : outs) loss = loss + o.pow(2).mean();
    loss.backward();
  };
  // As the reference does: a 32x32 step first, so RSS growth counts activations, not weights and gradients.
  step(at::randn({std::min<int64_t>(a.batch, 2), 3, 32, 32}));  // two samples: BatchNorm needs more than one
  const double rss0 = max_rss_mb();
  at::Tensor x = at::randn({a.batch, 3, a.imgsz, a.imgsz});
  step(x);
  const double rss1 = max_rss_mb();

  std::vector<double> times;
  int64_t act_bytes = 0;
  for (int64_t i = 0; i < a.steps; ++i) {
    ActivationMeter meter;
    const auto t0 = std::chrono::steady_clock::now();
    step(x);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    act_bytes = std::max(act_bytes, meter.peak_bytes());
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const auto parts = reversible::reversible_modules(*model);
  const int64_t columns = parts.empty() ? 0 : parts.front()->column_grid().columns();
  nlohmann::json j = {{"impl", "revkit"},
                      {"backbone", a.backbone},
                      {"columns", columns},
                      {"batch", a.batch},
                      {"size", a.imgsz},
                      {"memory_mode", a.memory_mode},
                      {"store_every", a.store_every},
                      {"threads", at::get_num_threads()},
                      {"params", params},
                      {"step_ms", std::round(median * 10) / 10},
                      {"act_mb", std::round(act_bytes / 1048576.0 * 10) / 10},
                      {"rss_act_mb", std::round((rss1 - rss0) * 10) / 10}};
  if (a.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::cout << fmt::format("{} ({} columns, {} params), batch {} at {}x{}, memory mode {}, {} threads\n", a.backbone,
                             columns, params, a.batch, a.imgsz, a.imgsz, a.memory_mode,
                             at::get_num_threads());
    std::cout << fmt::format("  step {:.1f} ms (median of {}), activation memory {:.1f} MB (tracked), {:.1f} MB (RSS growth)\n",
                             median, a.steps, act_bytes / 1048576.0, rss1 - rss0);
  }
  return 0;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "median training-step time and activation memory of a backbone");
  cmd->add_option("--backbone", a->backbone, "a registered backbone")->capture_default_str();
  cmd->add_option("--columns", a->columns, "number of columns (default: the backbone's)")->check(CLI::PositiveNumber);
  cmd->add_option("--imgsz", a->imgsz, "input side")->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--memory-mode", a->memory_mode, "off, column or full")->capture_default_str();
  cmd->add_option("--store-every", a->store_every, "full mode: keep every k-th column")->check(CLI::NonNegativeNumber);
  cmd->add_option("--alpha-init", a->alpha_init, "initial alpha")->capture_default_str();
  cmd->add_option("--steps", a->steps, "timed steps")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--threads", a->threads, "intra-op threads (default: LibTorch's)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", a->json, "print one JSON line");
  return [a] { return bench(*a); };
}

}  // namespace revkit::cli
