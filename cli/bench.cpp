// revkit bench: median step time and activation memory of a backbone or a whole detection model, comparable side
// by side with the seed's Python (bench_reference.py). A training step = forward, loss = sum_k mean(o_k^2) over the
// outputs, backward; an inference step = forward without autograd, in eval mode.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_kineto.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>
#include <system_error>

#include "backbones/backbone.h"
#include "backbones/feature_maps.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/device.h"
#include "core/error.h"
#include "core/memory_meter.h"
#include "core/weights.h"
#include "models/detection_model.h"
#include "reversible/reversible_module.h"

namespace revkit::cli {
namespace {

struct BenchArgs {
  std::string backbone = "revcol_tiny", model, memory_mode = "column", mode = "train";
  int64_t columns = 0, imgsz = 224, batch = 2, steps = 3, threads = 0, recompute_chunks = 1;
  ColumnArgs memory;  // the column grid's memory settings
  double alpha_init = 0.5;
  bool json = false, plans = false;
  std::string device = "cpu", channels_last = "auto";
  std::string profile;     // a Chrome trace of one more step
  std::string interleave;  // memory modes timed in turn in this process, comma-separated
};

// The benchmarked network: a registered backbone or a detection model, with its outputs as one list.
struct Subject {
  std::shared_ptr<torch::nn::Module> module;
  std::function<std::vector<at::Tensor>(const at::Tensor&)> forward;
  int64_t size_divisor = 32;
  std::string name;
  bool channels_last = false;
};

// Timed without drop path: its masks would differ between C++ and the Python reference.
BackboneSettings settings_of(const BenchArgs& a) {
  BackboneSettings s;
  s.memory_mode = reversible::parse_memory_mode(a.memory_mode);
  s.store_every = a.memory.store_every;
  s.keep_columns = a.memory.keep_columns;
  s.keep_matmuls = a.memory.keep_matmuls;
  s.keep_levels = a.memory.keep_levels;
  if (a.memory.memory_budget_mb > 0) s.memory_budget_mb = a.memory.memory_budget_mb;
  s.recompute_chunks = a.recompute_chunks;
  s.drop_path = 0.0;
  return s;
}

Subject make_subject(const BenchArgs& a) {
  if (!a.model.empty()) {
    ModelOverrides overrides;
    overrides.backbone = settings_of(a);
    overrides.channels_last = parse_channels_last(a.channels_last);
    DetectionModel model = build_model(a.model, overrides);
    return {model.ptr(), [model](const at::Tensor& x) mutable { return model->forward_raw(x); }, model->size_divisor(),
            a.model, model->channels_last()};
  }
  BackboneSettings settings = settings_of(a);
  if (a.columns > 0) settings.columns = a.columns;
  settings.alpha_init = a.alpha_init;
  std::shared_ptr<Backbone> backbone = make_backbone(a.backbone, settings);
  check_declared_maps(a.backbone, *backbone);
  auto forward = [backbone, name = a.backbone](const at::Tensor& x) { return checked_forward(name, *backbone, x); };
  return {backbone, forward, backbone->size_divisor(), a.backbone};
}

double max_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // kilobytes on Linux
}

// MB to one decimal, as every figure in the JSON lines.
double rounded_mb(double bytes) { return std::round(bytes / 1048576.0 * 10) / 10; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

using Step = std::function<void(const at::Tensor&)>;

// One step's wall time in ms, the device's queue drained before and after.
double timed_step_ms(const Step& step, const at::Tensor& x, const c10::Device& device) {
  synchronize(device);
  const auto t0 = std::chrono::steady_clock::now();
  step(x);
  synchronize(device);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// What a run measured on: the network, its columns and how they keep memory, the input and the threads.
nlohmann::json run_fields(const BenchArgs& a, const std::string& name,
                          const std::vector<reversible::ReversibleModule*>& parts, const c10::Device& device) {
  // What the steps ran with: auto mode's choice, or what was asked for.
  const bool reversible = !parts.empty();
  return {{"impl", "revkit"},
          {a.model.empty() ? "backbone" : "model", name},
          {"columns", reversible ? parts.front()->column_grid().columns() : 0},
          {"batch", a.batch},
          {"size", a.imgsz},
          {"store_every", reversible ? parts.front()->column_options().store_every() : a.memory.store_every},
          {"keep_columns", reversible ? parts.front()->column_options().keep_columns() : a.memory.keep_columns},
          {"keep_matmuls", reversible ? parts.front()->column_options().keep_matmuls() : a.memory.keep_matmuls},
          {"keep_levels", reversible ? parts.front()->column_options().keep_levels() : a.memory.keep_levels},
          {"alpha_init", a.model.empty() ? nlohmann::json(a.alpha_init) : nlohmann::json("config")},
          {"threads", at::get_num_threads()},
          {"device", device.str()}};
}

// Every plan auto mode weighs for this input, from the costs it measured: the time/memory curve it walks.
void print_plans(const reversible::ReversibleModule& part) {
  const auto& costs = part.column_costs();
  TORCH_INTERNAL_ASSERT(costs && part.planned_input_numel() > 0, "bench --plans: auto mode made no plan");
  const int64_t bound = reversible::choose_store_every(part.last_drift(), part.column_options().drift_tolerance());
  const auto scaled = costs->scaled(part.planned_input_numel());
  for (const auto& plan : reversible::candidate_plans(scaled, bound))
    std::cout << nlohmann::json{{"columns", scaled.columns()},
                                {"keep_columns", plan.keep_columns},
                                {"store_every", plan.store_every},
                                {"keep_matmuls", plan.keep_matmuls},
                                {"keep_levels", plan.keep_levels},
                                {"predicted_mb", rounded_mb(plan.activation_bytes)},
                                {"recompute_ms", std::round(plan.recompute_ms * 10) / 10},
                                {"plan", plan.describe(scaled.columns())}}
                     .dump()
              << "\n";
}

// Memory modes timed in turn, step by step, in this one process: the ratio of two modes' steps is taken within each
// round of steps, so that the machine's drift between processes, 20% and more on a shared machine, stays out of it.
int bench_interleaved(const BenchArgs& a, const std::vector<reversible::ReversibleModule*>& parts, const Step& step,
                      const Step& forward, const at::Tensor& x, const c10::Device& device, const std::string& name) {
  // MODE, then optionally +matmuls (every recomputed column keeping its matrix products; otherwise --keep-matmuls)
  // and +levels=N (N kept levels; otherwise --keep-levels).
  std::vector<reversible::MemoryMode> modes;
  std::vector<int64_t> matmuls, levels;
  std::vector<std::string> labels;
  std::stringstream list(a.interleave);
  for (std::string item; std::getline(list, item, ',');) {
    const std::string levels_key = "levels=";
    auto bad = [&](const std::string& why) {
      return InputError("--interleave: '" + item + "': expected MODE[+matmuls][+levels=N], " + why);
    };
    if (item.empty() || item.front() == '+' || item.back() == '+' || item.find("++") != std::string::npos)
      throw bad("not an empty part");
    std::stringstream parts_of(item);
    std::string part;
    std::getline(parts_of, part, '+');
    try {
      modes.push_back(reversible::parse_memory_mode(part));
    } catch (const InputError& e) {
      throw InputError(std::string("--interleave: ") + e.what());
    }
    matmuls.push_back(a.memory.keep_matmuls);
    levels.push_back(a.memory.keep_levels);
    while (std::getline(parts_of, part, '+')) {
      if (part == "matmuls") {
        matmuls.back() = std::numeric_limits<int64_t>::max();
      } else if (part.rfind(levels_key, 0) == 0 && part.size() > levels_key.size() &&
                 part.find_first_not_of("0123456789", levels_key.size()) == std::string::npos &&
                 part.size() - levels_key.size() < 10) {
        levels.back() = std::stoll(part.substr(levels_key.size()));
      } else {
        throw bad("not '+" + part + "'");
      }
      if (modes.back() == reversible::MemoryMode::Off)
        throw InputError("--interleave: off keeps every activation; +" + part + " needs column or full");
    }
    labels.push_back(item);
  }
  if (modes.size() < 2) throw InputError("--interleave needs two or more memory modes, got '" + a.interleave + "'");
  if (std::count(modes.begin(), modes.end(), reversible::MemoryMode::Auto))
    throw InputError("--interleave: auto plans again whenever it is set; time it on its own with --memory-mode auto");
  if (parts.empty() || a.mode != "train")
    throw InputError("bench --interleave needs a model with a reversible backbone and --mode train");
  auto use = [&](size_t k) {
    for (auto* part : parts)
      part->column_options().memory_mode(modes[k]).keep_matmuls(matmuls[k]).keep_levels(levels[k]);
  };
  // A first step in each mode: full mode reads the drift monitor on its first training forward.
  for (size_t k = 0; k < modes.size(); ++k) {
    use(k);
    step(x);
  }
  const size_t n = modes.size();
  // And in each round a forward without autograd, which a reversible step adds to a plain one (its backward
  // recomputes with grad what off's forward computed): for a backbone, 1 + its ratio to off is about the least a
  // step that recomputes every cell once can cost (the stem's forward is in it too).
  forward(x);
  std::vector<std::vector<double>> times(n), ratios(n);
  std::vector<double> forward_ratios;
  for (int64_t i = 0; i < a.steps; ++i) {
    std::vector<double> t(n + 1);
    // Each first in turn, and every other round in reverse order, so that none always follows the same one.
    const size_t first = static_cast<size_t>(i) % (n + 1);
    for (size_t r = 0; r <= n; ++r) {
      const size_t k = (i % 2 ? first + (n + 1) - r : first + r) % (n + 1);
      if (k == n) {
        t[k] = timed_step_ms(forward, x, device);
        continue;
      }
      use(k);
      t[k] = timed_step_ms(step, x, device);
    }
    for (size_t k = 0; k < n; ++k) {
      times[k].push_back(t[k]);
      ratios[k].push_back(t[k] / t[0]);
    }
    forward_ratios.push_back(t[n] / t[0]);
  }
  nlohmann::json rows = nlohmann::json::array();
  for (size_t k = 0; k < n; ++k) {
    use(k);
    ActivationMeter meter(device);
    step(x);
    // What ran: every level kept is plain autograd, with no products kept.
    const auto& grid = parts.front()->column_grid();
    const auto& options = parts.front()->column_options();
    const auto keeping = reversible::matmul_columns(options, grid.columns());
    const int64_t first_kept = reversible::first_kept_level(options, grid.num_levels());
    const bool off = modes[k] == reversible::MemoryMode::Off, plain = off || first_kept == 0;
    rows.push_back({{"memory_mode", reversible::to_string(modes[k])},
                    {"label", labels[k]},
                    {"keep_matmuls", plain ? 0 : std::count(keeping.begin(), keeping.end(), true)},
                    {"keep_levels", off ? 0 : grid.num_levels() - first_kept},
                    {"step_ms", std::round(median(times[k]) * 10) / 10},
                    {"ratio", std::round(median(ratios[k]) * 1000) / 1000},
                    {"act_mb", rounded_mb(meter.peak_bytes())}});
  }
  for (auto* part : parts)  // as asked, for the run's fields
    part->column_options().keep_matmuls(a.memory.keep_matmuls).keep_levels(a.memory.keep_levels);
  nlohmann::json j = run_fields(a, name, parts, device);
  j["interleaved"] = rows;
  j["forward_ratio"] = std::round(median(forward_ratios) * 1000) / 1000;
  j["steps"] = a.steps;
  if (a.json) {
    std::cout << j.dump() << "\n";
    return 0;
  }
  std::cout << fmt::format("{} ({} columns), batch {} at {}x{}, {} rounds of one step per mode, {} threads\n", name,
                           j["columns"].get<int64_t>(), a.batch, a.imgsz, a.imgsz, a.steps, at::get_num_threads());
  for (const auto& row : rows)
    std::cout << fmt::format(
        "  {:<14} step {:.1f} ms (median), {:.3f} x {} (median of the rounds' ratios), "
        "activation memory {:.1f} MB\n",
        row["label"].get<std::string>(), row["step_ms"].get<double>(), row["ratio"].get<double>(),
        rows[0]["label"].get<std::string>(), row["act_mb"].get<double>());
  const double forward_ratio = j["forward_ratio"].get<double>();
  std::cout << fmt::format("  {:<14} {:.3f} x {} (without autograd)", "forward alone", forward_ratio,
                           rows[0]["label"].get<std::string>());
  // A backbone's forward is its stem and its columns: about what a reversible step adds to a plain one.
  if (modes[0] == reversible::MemoryMode::Off && a.model.empty())
    std::cout << fmt::format(": a step that recomputes every cell once costs about {:.3f} x off", 1 + forward_ratio);
  std::cout << "\n";
  return 0;
}

// Kineto reports a failed write only in its log, and writes in place: the trace goes to a private folder beside
// the file the path leads to first, is checked whole, then goes all at once to the path.
void write_trace(torch::autograd::profiler::ProfilerResult& result, AtomicFile& out, const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path beside = fs::weakly_canonical(fs::absolute(path)).parent_path();
  std::string folder = (beside / ".revkit-trace.XXXXXX").string();
  if (::mkdtemp(folder.data()) == nullptr) {
    const int error = errno;
    throw fs::filesystem_error("bench --profile: a temporary folder beside the trace", folder,
                               std::error_code(error, std::generic_category()));
  }
  struct RemovedAtEnd {
    std::string folder;
    ~RemovedAtEnd() {
      std::error_code ignored;
      fs::remove_all(folder, ignored);
    }
  } removed{folder};
  const std::string temp = folder + "/trace.json";
  result.save(temp);
  std::ifstream in(temp, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Kineto's own write failing (a full disk) leaves no trace or a cut one: not the user's path, which was writable.
  if (!nlohmann::json::accept(text))
    throw InputError(path, "cannot write: LibTorch's profiler left an incomplete trace (is the disk full?)");
  out.write(text);
  out.commit();
}

int bench(const BenchArgs& a) {
  if (a.threads > 0) at::set_num_threads(static_cast<int>(a.threads));
  if (!std::isfinite(a.alpha_init))
    throw InputError(fmt::format("--alpha-init must be a finite number, got {}", a.alpha_init));
  if (a.mode != "train" && a.mode != "infer")
    throw InputError(fmt::format("--mode must be train or infer, got '{}'", a.mode));
  const bool training = a.mode == "train";
  const c10::Device device = parse_device(a.device);
  at::manual_seed(0);
  Subject subject = make_subject(a);
  torch::nn::Module& model = *subject.module;
  model.to(device);
  check_image_size_option(a.imgsz);
  if (a.imgsz % subject.size_divisor != 0)
    throw InputError(fmt::format("--imgsz must be a positive multiple of {}, got {}", subject.size_divisor, a.imgsz));
  if (training) check_training_batch(model, a.imgsz, subject.size_divisor, a.batch, fmt::format("--batch {}", a.batch));
  model.train(training);
  const int64_t params = count_parameters(model);
  const auto parts = reversible::reversible_modules(model);

  auto forward = [&](const at::Tensor& x) {
    at::NoGradGuard no_grad;
    subject.forward(x);
  };
  auto step = [&](const at::Tensor& x) {
    if (!training) return forward(x);
    auto outs = subject.forward(x);
    at::Tensor loss = at::zeros({});
    for (const auto& o : outs) loss = loss + o.pow(2).mean();
    if (!loss.requires_grad())
      throw InputError(fmt::format("{}: no output depends on a trainable parameter, so a training step has nothing "
                                   "to differentiate; time its forward with --mode infer",
                                   subject.name));
    loss.backward();
  };
  if (a.plans) {
    if (parts.empty() || !training || a.memory_mode != "auto")
      throw InputError("bench --plans needs a model with a reversible backbone, --mode train and --memory-mode auto");
    step(at::randn({a.batch, 3, a.imgsz, a.imgsz}, device));  // measures the costs and reads the drift
    print_plans(*parts.front());
    return 0;
  }
  if (!a.interleave.empty()) {
    at::Tensor x = at::randn({a.batch, 3, a.imgsz, a.imgsz}, device);
    return bench_interleaved(a, parts, step, forward, x, device, subject.name);
  }
  // Opened before the steps, so that a path that cannot be written fails at once and the old file stays as it is.
  std::optional<AtomicFile> trace_file;
  if (!a.profile.empty()) trace_file.emplace(a.profile);
  // As the reference does: a 32x32 step first, so RSS growth counts activations, not weights and gradients. Auto
  // mode's first plan, and the one it reports, are for the benchmarked input: the warm-up runs as column mode.
  const bool auto_mode = a.memory_mode == "auto";
  auto warm_up_mode = [&](reversible::MemoryMode mode) {
    if (auto_mode)
      for (auto* part : parts) part->column_options().memory_mode(mode);
  };
  warm_up_mode(reversible::MemoryMode::Column);
  step(at::randn({2, 3, 32, 32}, device));  // two samples whatever the batch: BatchNorm needs two at 1x1
  warm_up_mode(reversible::MemoryMode::Auto);
  const double rss0 = max_rss_mb();
  at::Tensor x = at::randn({a.batch, 3, a.imgsz, a.imgsz}, device);
  for (auto* part : parts) part->recheck_drift();  // auto mode chooses on the real input, not the 32x32 one
  step(x);
  const double rss1 = max_rss_mb();

  // Timed steps first; then one step measured for activation memory by revkit's CPU allocator, which the
  // command installed at its start (on CUDA: the caching allocator's statistics).
  std::vector<double> times;
  for (int64_t i = 0; i < a.steps; ++i) times.push_back(timed_step_ms(step, x, device));
  int64_t act_bytes = 0, first_act_bytes = 0, held_bytes = 0;
  {
    ActivationMeter meter(device);
    step(x);
    act_bytes = meter.peak_bytes();
    held_bytes = meter.held_at_start();  // weights, gradients, the input: what a step starts from
  }
  // A first step, which also reads the drift monitor in full and auto mode (as a run's first step, and every
  // 100th, does).
  for (auto* part : parts) part->recheck_drift();
  {
    ActivationMeter meter(device);
    step(x);
    first_act_bytes = meter.peak_bytes();
  }
  if (!a.profile.empty()) {
    // LibTorch's profiler with input shapes, so that bench/profile_summary.py --shapes can tell one matrix product
    // from another.
    namespace prof = torch::autograd::profiler;
    const torch::profiler::impl::ProfilerConfig config(torch::profiler::impl::ProfilerState::KINETO,
                                                       /*report_input_shapes=*/true);
    const std::set<torch::profiler::impl::ActivityType> activities{torch::profiler::impl::ActivityType::CPU};
    // Kineto asks the CUDA driver for devices even when profiling the CPU, and logs its failure as an error.
    if (!device.is_cuda()) setenv("KINETO_LOG_LEVEL", "5", /*overwrite=*/0);
    prof::prepareProfiler(config, activities);
    prof::enableProfiler(config, activities);
    step(x);
    write_trace(*prof::disableProfiler(), *trace_file, a.profile);
  }
  const double step_ms = median(times);
  nlohmann::json j = run_fields(a, subject.name, parts, device);
  j.update({{"mode", a.mode},
            {"memory_mode", a.memory_mode},
            {"recompute_chunks", a.recompute_chunks},
            {"channels_last", subject.channels_last},
            {"params", params},
            {"step_ms", std::round(step_ms * 10) / 10},
            {"act_mb", rounded_mb(act_bytes)},
            {"first_act_mb", rounded_mb(first_act_bytes)},
            {"rss_act_mb", std::round((rss1 - rss0) * 10) / 10},
            {"held_mb", rounded_mb(held_bytes)}});  // held: what a step starts from (weights, gradients, the input)
  const int64_t columns = j["columns"], store_every = j["store_every"], keep_columns = j["keep_columns"];
  if (a.memory_mode == "auto" && !parts.empty()) {
    const auto& plan = parts.front()->memory_plan();
    j["predicted_mb"] = rounded_mb(plan.activation_bytes);
    if (a.memory.memory_budget_mb > 0) j["budget_mb"] = a.memory.memory_budget_mb;
  }
  if (a.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::cout << fmt::format(
        "{} ({} columns, {} params), {} batch {} at {}x{}, memory mode {} (store every {}, keep {} columns), "
        "{} threads{}\n",
        subject.name, columns, params, a.mode, a.batch, a.imgsz, a.imgsz, a.memory_mode, store_every, keep_columns,
        at::get_num_threads(), subject.channels_last ? ", channels-last" : "");
    std::cout << fmt::format(
        "  step {:.1f} ms (median of {}), activation memory {:.1f} MB (tracked; {:.1f} MB in a first step), {:.1f} MB "
        "(RSS growth)\n",
        step_ms, a.steps, act_bytes / 1048576.0, first_act_bytes / 1048576.0, rss1 - rss0);
  }
  return 0;
}

}  // namespace

Command add_bench(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "median step time and activation memory of a backbone or a model");
  cmd->add_option("--backbone", a->backbone, "a registered backbone")->capture_default_str();
  cmd->add_option("--model", a->model, "a whole detection model instead: a built-in name or a config file");
  cmd->add_option("--mode", a->mode, "train (forward and backward) or infer (forward without autograd)")
      ->capture_default_str();
  cmd->add_option("--columns", a->columns, "number of columns (default: the backbone's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  cmd->add_option("--imgsz", a->imgsz, "input side")->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")->check(positive())->capture_default_str();
  auto* memory_mode =
      cmd->add_option("--memory-mode", a->memory_mode, "off, column, full or auto")->capture_default_str();
  add_column_args(*cmd, a->memory);
  auto* plans = cmd->add_flag(
      "--plans", a->plans,
      "auto mode: print every plan it weighs for this input (kept and stored columns, predicted memory and "
      "recompute), one JSON line each, instead of timing");
  cmd->add_option("--recompute-chunks", a->recompute_chunks, "recompute each level's blocks in this many pieces")
      ->check(positive());
  cmd->add_option("--channels-last", a->channels_last,
                  "--model: convolution weights and images channels-last (auto: unless the model has a backbone row)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  cmd->add_option("--alpha-init", a->alpha_init, "initial alpha")->capture_default_str();
  cmd->add_option("--steps", a->steps, "timed steps")->check(positive())->capture_default_str();
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N (activation memory from the CUDA caching allocator)")
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "intra-op threads (default: every core, or OMP_NUM_THREADS)")
      ->check(zero_or_more())
      ->check(CLI::Range(int64_t{0}, int64_t{1024}));
  cmd->add_flag("--json", a->json, "print one JSON line");
  auto* interleave =
      cmd->add_option("--interleave", a->interleave,
                      "time these memory modes in turn, a step of each per round, in this one process (e.g. "
                      "off,column,full; column+matmuls: every recomputed column keeping its matrix products; "
                      "column+levels=N: N upper levels kept in every recomputed column): each one's median step and "
                      "the median of its per-round ratios to the first");
  auto* profile = cmd->add_option("--profile", a->profile,
                                  "write a Chrome trace of one more step (LibTorch's profiler) to this file; "
                                  "bench/profile_summary.py sums it by operator");
  interleave->excludes(profile)->excludes(memory_mode)->excludes(plans);
  return [a] { return bench(*a); };
}

}  // namespace revkit::cli
