#include "reversible/reversible_module.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "core/logging.h"
#include "reversible/drift.h"

namespace revkit::reversible {
namespace {

// The samples the drift monitor and auto's cost probe run on: few, which keeps them a fraction of a step, but two
// where the batch has them: a level with BatchNorm in training mode needs more than one value per channel on its
// 1x1 maps, as the step itself does.
at::Tensor probe_samples(const at::Tensor& x) { return x.detach().narrow(0, 0, std::min<int64_t>(x.size(0), 2)); }

}  // namespace

std::vector<ReversibleModule*> reversible_modules(torch::nn::Module& root) {
  std::vector<ReversibleModule*> found;
  if (auto* self = dynamic_cast<ReversibleModule*>(&root)) found.push_back(self);
  for (const auto& m : root.modules(/*include_self=*/false))
    if (auto* r = dynamic_cast<ReversibleModule*>(m.get())) found.push_back(r);
  return found;
}

int set_memory_mode(torch::nn::Module& root, MemoryMode mode, int64_t store_every, int64_t keep_columns,
                    int64_t keep_matmuls, int64_t keep_levels) {
  auto found = reversible_modules(root);
  for (auto* r : found) {
    r->column_options()
        .memory_mode(mode)
        .store_every(store_every)
        .keep_columns(keep_columns)
        .keep_matmuls(keep_matmuls)
        .keep_levels(keep_levels);
    r->recheck_drift();
  }
  return static_cast<int>(found.size());
}

int64_t choose_store_every(const std::vector<double>& drift, double tolerance) {
  const int64_t columns = static_cast<int64_t>(drift.size()) + 1;
  int64_t k = 1;  // store every column: no inverse at all
  for (int64_t inverses = 1; inverses < columns; ++inverses) {
    // NaN (a diverged rebuild) fails the test too
    if (!(drift[columns - 1 - inverses] <= tolerance)) break;
    k = inverses + 1;
  }
  return k == columns ? 0 : k;
}

std::vector<at::Tensor> ReversibleModule::run_columns(const at::Tensor& x) {
  if (record_input_) recorded_input_ = x.detach();
  const MemoryMode mode = options_.memory_mode();
  if ((mode == MemoryMode::Full || mode == MemoryMode::Auto) && at::GradMode::is_enabled() &&
      options_.drift_check_every() > 0 && training_forwards_++ % options_.drift_check_every() == 0)
    check_drift(x);
  if (mode == MemoryMode::Auto && at::GradMode::is_enabled()) plan_memory(x);
  return reversible::run_columns(grid_, x, options_);
}

void ReversibleModule::plan_memory(const at::Tensor& x) {
  if (x.numel() == planned_numel_) return;
  // Measured on the probe samples, and again only for another sample shape: the costs scale with the batch.
  const std::vector<int64_t> sample(x.sizes().begin() + 1, x.sizes().end());
  if (!costs_ || sample != measured_sample_) {
    costs_ = measure_column_costs(grid_, probe_samples(x), options_);
    measured_sample_ = sample;
  }
  const int64_t budget = options_.memory_budget_mb() > 0 ? static_cast<int64_t>(options_.memory_budget_mb() * 1048576.0)
                                                         : default_memory_budget(x.device());
  const MemoryPlan plan = choose_plan(costs_->scaled(x.numel()), budget, max_store_every_);
  if (plan.activation_bytes > budget && !warned_budget_) {
    warned_budget_ = true;
    logger()->warn(
        "memory mode auto: the budget of {:.0f} MB is below the least this grid needs at input {} ({:.0f} MB); "
        "running with the least memory",
        budget / 1048576.0, fmt::join(x.sizes(), "x"), plan.activation_bytes / 1048576.0);
  }
  // The first plan is said once; later changes (another batch shape, a new drift reading) only in the debug log.
  const bool first = plan_.activation_bytes == 0;
  if (first || plan.keep_columns != plan_.keep_columns || plan.store_every != plan_.store_every ||
      plan.keep_matmuls != plan_.keep_matmuls || plan.keep_levels != plan_.keep_levels)
    logger()->log(first ? LogLevel::Info : LogLevel::Debug, "memory mode auto at input {}, budget {:.0f} MB: {}",
                  fmt::join(x.sizes(), "x"), budget / 1048576.0, plan.describe(grid_.columns()));
  plan_ = plan;
  planned_numel_ = x.numel();
  options_.keep_columns(plan.keep_columns)
      .store_every(plan.store_every)
      .keep_matmuls(plan.keep_matmuls)
      .keep_levels(plan.keep_levels);
}

void ReversibleModule::check_drift(const at::Tensor& x) {
  // A sample or two read the drift as well as the batch, and keep the reading's memory a fraction of the step's: a
  // first step is then no more expensive than the others.
  if (options_.memory_mode() == MemoryMode::Auto) {
    // Over the whole grid and every level: the plan, which decides how many columns are recomputed and how many
    // levels are kept, is made from this reading, which must hold for any plan.
    last_drift_ = reversible::measure_drift(grid_, probe_samples(x), ColumnOptions(options_).keep_levels(0));
    const int64_t k = choose_store_every(last_drift_, options_.drift_tolerance());
    if (k != max_store_every_)
      logger()->debug("memory mode auto: chains of at most {} inverses (0: any), drift per column {:.1e}",
                      k == 0 ? grid_.columns() - 1 : k - 1, fmt::join(last_drift_, ", "));
    max_store_every_ = k;
    planned_numel_ = -1;
    return;
  }
  // Full mode rebuilds from the last recomputed column, not from the kept ones after it.
  const int64_t recomputed = grid_.columns() - std::clamp<int64_t>(options_.keep_columns(), 0, grid_.columns());
  if (recomputed < 2) {
    last_drift_.clear();  // nothing is rebuilt
    return;
  }
  last_drift_ = reversible::measure_drift(grid_.first_columns(recomputed), probe_samples(x), options_);
  const int64_t inverses_bound = options_.store_every() > 0 ? options_.store_every() - 1 : recomputed - 1;
  for (size_t j = 0; j < last_drift_.size(); ++j) {
    // Columns this plan stores are not rebuilt; the reading from the last column overstates the rest when
    // store_every is set, so only columns within its reach are judged.
    const int64_t inverses = recomputed - 1 - static_cast<int64_t>(j);
    if (inverses > inverses_bound) continue;
    if (!(last_drift_[j] <= options_.drift_warning()) && warned_columns_.insert(j).second)
      logger()->warn(
          "memory mode full: column {} is rebuilt by the inverse with relative error {:.2e} (above {:.0e}); "
          "its gradients are inexact: use --memory-mode auto or column, or a larger alpha",
          j, last_drift_[j], options_.drift_warning());
  }
}

std::vector<double> measure_drift(ReversibleModule& module, const at::Tensor& part_input) {
  at::NoGradGuard no_grad;
  return measure_drift(module.column_grid(), module.column_input(part_input), module.column_options());
}

std::vector<std::vector<double>> measure_drift(torch::nn::Module& model, const std::function<void()>& forward) {
  auto parts = reversible_modules(model);
  for (auto* p : parts) p->record_input_ = true;
  {
    at::NoGradGuard no_grad;
    forward();
  }
  std::vector<std::vector<double>> drift;
  for (auto* p : parts) {
    p->record_input_ = false;
    TORCH_CHECK(p->recorded_input_.defined(), "measure_drift: a reversible part did not run in the forward pass");
    drift.push_back(measure_drift(p->column_grid(), p->recorded_input_, p->column_options()));
    p->recorded_input_ = at::Tensor();
  }
  return drift;
}

}  // namespace revkit::reversible
