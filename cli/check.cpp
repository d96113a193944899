// revkit check: gradient equivalence of RevCol against a reference fixture, or of a backbone's reversible
// memory modes against plain autograd, with the drift monitor's per-column reconstruction error.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <iostream>
#include <limits>

#include "backbones/feature_maps.h"
#include "backbones/revcol_fixture.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "models/detection_model.h"
#include "reversible/reversible_module.h"

namespace revkit::cli {
namespace {

using reversible::MemoryMode;

struct CheckArgs {
  std::string fixture, backbone, memory_mode = "all", dtype = "float64", weights, reference;
  double tolerance = 1e-5, floor = 1e-6;
  int64_t columns = 0, imgsz = 64, batch = 2;
  ColumnArgs memory;  // the column grid's memory settings
  double drop_path = 0.1, alpha_init = 0.5;
  uint64_t seed = 0;
};

std::vector<MemoryMode> modes_of(const std::string& text, bool include_off) {
  if (text != "all") return {reversible::parse_memory_mode(text)};
  std::vector<MemoryMode> all{MemoryMode::Column, MemoryMode::Full};
  if (include_off) all.insert(all.begin(), MemoryMode::Off);
  return all;
}

// Prints one mode's worst differences per category; returns whether they are within tolerance.
bool print_report(const std::string& mode, const reversible::EquivalenceReport& report, double tolerance) {
  bool ok = report.rng_stream_equal;
  for (const auto& category : report.categories()) {
    const auto worst = report.worst(category);
    const bool within = worst.relative <= tolerance;
    ok = ok && within;
    std::cout << fmt::format("{:<7} {:<20} {:>10.3e}  {:>8.0e}  {:<4}  {}\n", mode, category, worst.relative, tolerance,
                             within ? "ok" : "FAIL", worst.name);
  }
  if (!report.rng_stream_equal)
    std::cout << fmt::format("{:<7} RNG stream after backward differs from the reference run  FAIL\n", mode);
  return ok;
}

void print_header() {
  std::cout << fmt::format("{:<7} {:<20} {:>10}  {:>8}  {:<4}  {}\n", "mode", "category", "worst rel", "tol", "",
                           "tensor");
}

int check_fixture(const CheckArgs& a) {
  const RevColFixture fixture = load_revcol_fixture(a.fixture);
  std::cout << fmt::format("fixture {}: {}, channels {}, layers {}, {} columns, input {}\n", a.fixture,
                           c10::toString(fixture.dtype), fixture.options.channels(), fixture.options.layers(),
                           fixture.options.columns(), fixture.input.sizes().vec());
  print_header();
  bool ok = true;
  for (MemoryMode mode : modes_of(a.memory_mode, /*include_off=*/true)) {
    const auto report = check_revcol_fixture(fixture, mode);
    ok = print_report(reversible::to_string(mode), report, reversible::default_tolerance(mode, fixture.dtype)) && ok;
  }
  std::cout << (ok ? "check passed\n" : "check FAILED\n");
  return ok ? 0 : 1;
}

// A mode whose options keep every column, or every level, runs plain autograd: its check compares plain autograd
// with itself, which the user should know.
void note_plain_parts(const std::vector<reversible::ReversibleModule*>& parts, MemoryMode mode,
                      const ColumnArgs& memory) {
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& grid = parts[i]->column_grid();
    const char* why = nullptr;
    if (memory.keep_columns >= grid.columns())
      why = "--keep-columns keeps every column";
    else if (memory.keep_levels >= grid.num_levels())
      why = "--keep-levels keeps every level";
    if (why)
      std::cout << fmt::format("note: {}{} of the {} x {} grid, so {} mode ran plain autograd there\n",
                               parts.size() > 1 ? fmt::format("part {}: ", i) : "", why, grid.columns(),
                               grid.num_levels(), reversible::to_string(mode));
  }
}

int check_backbone(const CheckArgs& a) {
  c10::ScalarType dtype;
  if (a.dtype == "float64")
    dtype = at::kDouble;
  else if (a.dtype == "float32")
    dtype = at::kFloat;
  else
    throw InputError("--dtype must be float32 or float64, got '" + a.dtype + "'");
  const std::vector<MemoryMode> modes = modes_of(a.memory_mode, /*include_off=*/false);
  if (modes.front() == MemoryMode::Off)
    throw InputError(
        "--memory-mode off: plain autograd is what check --backbone compares the other modes with; "
        "choose column, full, auto or all");
  if (!std::isfinite(a.alpha_init))
    throw InputError(fmt::format("--alpha-init must be a finite number, got {}", a.alpha_init));
  BackboneSettings settings;
  if (a.columns > 0) settings.columns = a.columns;
  settings.drop_path = a.drop_path;
  settings.alpha_init = a.alpha_init;
  at::manual_seed(a.seed);
  std::shared_ptr<Backbone> model = make_backbone(a.backbone, settings);
  check_image_size_option(a.imgsz);
  if (a.imgsz % model->size_divisor() != 0)
    throw InputError(fmt::format("--imgsz must be a positive multiple of {} for {}, got {}", model->size_divisor(),
                                 a.backbone, a.imgsz));
  check_training_batch(*model, a.imgsz, model->size_divisor(), a.batch,
                       fmt::format("--batch {} ({})", a.batch, a.backbone));
  model->to(dtype);
  model->train();
  at::Tensor input = at::randn({a.batch, 3, a.imgsz, a.imgsz}, at::TensorOptions().dtype(dtype));
  check_declared_maps(a.backbone, *model);
  auto forward = [&](const at::Tensor& x) { return checked_forward(a.backbone, *model, x); };

  auto parts = reversible::reversible_modules(*model);
  if (parts.empty())
    throw InputError(fmt::format("backbone {} has no reversible part (no ReversibleModule below it): every memory "
                                 "mode would run plain autograd, so check --backbone has nothing to compare",
                                 a.backbone));
  for (size_t i = 0; i < parts.size(); ++i)
    if (parts[i]->column_grid().columns() == 0)
      throw InputError(fmt::format("backbone {}: reversible part {} has an empty column grid (no level was added "
                                   "to it), so it cannot run",
                                   a.backbone, i));
  std::cout << fmt::format("backbone {}: {}, {} reversible part(s), input {}, drop path {}, alpha init {}\n",
                           a.backbone, a.dtype, parts.size(), input.sizes().vec(), a.drop_path, a.alpha_init);
  print_header();
  bool ok = true, full_failed = false;
  for (MemoryMode mode : modes) {
    reversible::ModeComparison cmp;
    cmp.mode = mode;
    cmp.store_every = a.memory.store_every;
    cmp.keep_columns = a.memory.keep_columns;
    cmp.keep_matmuls = a.memory.keep_matmuls;
    cmp.keep_levels = a.memory.keep_levels;
    cmp.memory_budget_mb = a.memory.memory_budget_mb;
    cmp.seed = a.seed;
    const auto report = reversible::compare_memory_modes(*model, forward, input, cmp);
    const bool mode_ok = print_report(reversible::to_string(mode), report, reversible::default_tolerance(mode, dtype));
    ok = mode_ok && ok;
    full_failed = full_failed || (mode == MemoryMode::Full && !mode_ok);
    if (mode != MemoryMode::Auto)
      note_plain_parts(parts, mode, a.memory);
    else
      for (auto* part : parts)
        std::cout << fmt::format("auto: {}; store every {} (0: the last recomputed only), keep {} columns\n",
                                 part->memory_plan().describe(part->column_grid().columns()),
                                 part->memory_plan().store_every, part->memory_plan().keep_columns);
  }
  const auto drifts = reversible::measure_drift(*model, [&] { model->forward(input); });
  for (size_t i = 0; i < drifts.size(); ++i) {
    const auto& drift = drifts[i];
    std::string cells;
    for (size_t j = 0; j < drift.size(); ++j) cells += fmt::format("  col {}: {:.2e}", j, drift[j]);
    std::cout << fmt::format("drift (reconstruction error per column, full inverse from the last){}{}\n",
                             parts.size() > 1 ? fmt::format(" part {}", i) : "",
                             cells.empty() ? "  (one column)" : cells);
  }
  // Full mode's gradients are only as exact as the states its inverse rebuilds.
  double worst_drift = 0.0;
  for (const auto& drift : drifts)
    for (double d : drift) worst_drift = std::isnan(d) ? d : std::max(worst_drift, d);
  if (full_failed && !(worst_drift <= reversible::default_tolerance(MemoryMode::Full, dtype)))
    std::cout << fmt::format(
        "note: full mode's inverse rebuilds the columns' states with errors up to {:.2e}: its gradients can be "
        "off by as much, or more. The levels are ill-conditioned to invert at this input (small maps, few samples, "
        "|alpha| < 1); column mode, float64 or --store-every 1 avoid it\n",
        worst_drift);
  std::cout << (ok ? "check passed\n" : "check FAILED\n");
  return ok ? 0 : 1;
}

// Two weights files tensor by tensor: every name on one side only, every shape or dtype that differs, and the
// worst relative differences (a port against its reference, or two runs that should agree).
int check_weights(const CheckArgs& a) {
  if (!(a.tolerance >= 0 && std::isfinite(a.tolerance)))
    throw InputError(fmt::format("--tolerance must be 0 or more, got {}", a.tolerance));
  if (!(a.floor > 0 && std::isfinite(a.floor)))
    throw InputError(fmt::format("--floor must be positive, got {}", a.floor));
  const Safetensors w = read_safetensors(a.weights), r = read_safetensors(a.reference);
  bool ok = true;
  for (const auto& [name, t] : r.tensors)
    if (!w.tensors.count(name)) ok = false, std::cout << fmt::format("missing in {}: {}\n", a.weights, name);
  std::vector<std::pair<double, std::string>> diffs;
  for (const auto& [name, t] : w.tensors) {
    const auto it = r.tensors.find(name);
    if (it == r.tensors.end()) {
      ok = false;
      std::cout << fmt::format("not in {}: {}\n", a.reference, name);
      continue;
    }
    if (t.sizes() != it->second.sizes()) {
      ok = false;
      std::cout << fmt::format("{}: shape [{}] against [{}]\n", name, fmt::join(t.sizes(), ", "),
                               fmt::join(it->second.sizes(), ", "));
      continue;
    }
    // Relative to the reference tensor's largest entry, but not below `floor`: a tensor that is all but zero
    // (a bias that has barely moved from its zero start) is compared absolutely.
    const at::Tensor x = t.to(at::kDouble), ref = it->second.to(at::kDouble);
    const double scale = std::max(ref.numel() ? ref.abs().max().item<double>() : 0.0, a.floor);
    const double diff = x.numel() ? (x - ref).abs().max().item<double>() / scale : 0.0;
    // A NaN or infinity on either side fails, and ranks first (a NaN would compare false, and sort anywhere).
    diffs.emplace_back(std::isfinite(diff) ? diff : std::numeric_limits<double>::infinity(), name);
  }
  std::sort(diffs.rbegin(), diffs.rend());
  for (size_t i = 0; i < std::min<size_t>(5, diffs.size()); ++i)
    std::cout << fmt::format("{:>10.3e}  {}\n", diffs[i].first, diffs[i].second);
  const double worst = diffs.empty() ? 0.0 : diffs.front().first;
  ok = ok && worst <= a.tolerance;
  std::cout << fmt::format("{} tensors compared, worst relative difference {:.3e} (tolerance {:.0e})\n", diffs.size(),
                           worst, a.tolerance);
  std::cout << (ok ? "check passed\n" : "check FAILED\n");
  return ok ? 0 : 1;
}

}  // namespace

Command add_check(CLI::App& app) {
  auto a = std::make_shared<CheckArgs>();
  auto* cmd = app.add_subcommand(
      "check", "gradient equivalence: a fixture from the seed's Python, or memory modes against plain autograd");
  auto* fixture = cmd->add_option("--fixture", a->fixture, "a fixture written by make_fixture.py (safetensors)");
  auto* backbone = cmd->add_option("--backbone", a->backbone, "a registered backbone, e.g. revcol_tiny");
  auto* weights = cmd->add_option("--weights", a->weights, "a weights file to compare with --reference (safetensors)");
  cmd->add_option("--reference", a->reference, "the weights --weights should equal");
  cmd->add_option("--tolerance", a->tolerance, "largest relative difference allowed with --weights")
      ->capture_default_str();
  cmd->add_option("--floor", a->floor, "with --weights: tensors smaller than this compare absolutely")
      ->capture_default_str();
  fixture->excludes(backbone);
  weights->excludes(fixture)->excludes(backbone);
  cmd->add_option("--memory-mode", a->memory_mode, "off, column, full, auto or all")->capture_default_str();
  cmd->add_option("--columns", a->columns, "number of columns (default: the backbone's)")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  cmd->add_option("--imgsz", a->imgsz, "input side")->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")->check(positive())->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "float32 or float64")->capture_default_str();
  cmd->add_option("--drop-path", a->drop_path, "drop-path rate")->check(drop_path_rate())->capture_default_str();
  cmd->add_option("--alpha-init", a->alpha_init, "initial alpha")->capture_default_str();
  add_column_args(*cmd, a->memory);
  cmd->add_option("--seed", a->seed, "random seed")->check(seed_value())->capture_default_str();
  return [a] {
    if (!a->weights.empty()) {
      if (a->reference.empty()) throw InputError("check --weights needs --reference");
      return check_weights(*a);
    }
    if (a->fixture.empty() == a->backbone.empty())
      throw InputError("check needs one of --fixture FILE, --backbone NAME or --weights FILE");
    return a->fixture.empty() ? check_backbone(*a) : check_fixture(*a);
  };
}

}  // namespace revkit::cli
