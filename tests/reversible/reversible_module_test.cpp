#include "reversible/reversible_module.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <torch/nn/modules/container/sequential.h>

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/logging.h"
#include "reversible/drift.h"
#include "reversible/testing.h"

#include "toy_levels.h"

using namespace revkit;
using reversible::MemoryMode;

namespace {
struct TwoStacks : torch::nn::Module {
  TwoStacks() {
    a = register_module("a", testing::ToyStack(testing::ToyOptions{}));
    b = register_module("b", testing::ToyStack(testing::ToyOptions{}));
  }
  testing::ToyStack a{nullptr}, b{nullptr};
};
}  // namespace

TEST_CASE("set_memory_mode reaches every reversible part of a model") {
  TwoStacks model;
  CHECK(reversible::reversible_modules(model).size() == 2);
  CHECK(reversible::set_memory_mode(model, MemoryMode::Full, 3) == 2);
  CHECK(model.a->column_options().memory_mode() == MemoryMode::Full);
  CHECK(model.b->column_options().store_every() == 3);
  CHECK(reversible::set_memory_mode(*model.a, MemoryMode::Off) == 1);  // the root itself counts
  CHECK(model.a->column_options().memory_mode() == MemoryMode::Off);
  CHECK(model.b->column_options().memory_mode() == MemoryMode::Full);
}

namespace {
// A stack whose grid receives three times the model input, with tanh levels: the drift depends on the scale.
struct ScaledInputStack : testing::ToyStackImpl {
  ScaledInputStack() : testing::ToyStackImpl(testing::ToyOptions{3, 3, 4, 0.5}) {}
  at::Tensor column_input(const at::Tensor& x) override { return 3 * x; }
};
}  // namespace

TEST_CASE("measure_drift on a module runs the grid on the module's column input") {
  at::manual_seed(3);
  ScaledInputStack toy;
  toy.to(at::kDouble);
  const at::Tensor x = at::randn({1, 3, 5, 5}, at::kDouble);
  const auto drift = reversible::measure_drift(toy, x);
  REQUIRE(drift.size() == 3);
  const auto on_column_input = reversible::measure_drift(toy.column_grid(), 3 * x, toy.column_options());
  const auto on_model_input = reversible::measure_drift(toy.column_grid(), x, toy.column_options());
  for (size_t j = 0; j < drift.size(); ++j) {
    CHECK(drift[j] == on_column_input[j]);
    CHECK(drift[j] != on_model_input[j]);  // a monitor fed the model's input would read other errors
  }
}

TEST_CASE("measure_drift on a model: each part on the input it receives in the forward pass") {
  at::manual_seed(4);
  // Two parts with different alphas, so their drift differs, and b fed a's first output, not the image.
  struct Parts : torch::nn::Module {
    Parts() {
      a = register_module("a", testing::ToyStack(testing::ToyOptions{3, 2, 3, 0.5}));
      b = register_module("b", testing::ToyStack(testing::ToyOptions{3, 2, 3, 0.3}));
    }
    testing::ToyStack a{nullptr}, b{nullptr};
  } model;
  model.to(at::kDouble);
  const at::Tensor x = at::randn({1, 3, 5, 5}, at::kDouble);
  const auto drift = reversible::measure_drift(model, [&] { model.b->forward(model.a->forward(x)[0]); });
  REQUIRE(drift.size() == 2);
  at::Tensor into_b;
  {
    at::NoGradGuard no_grad;
    into_b = model.a->forward(x)[0];
  }
  const auto a_alone = reversible::measure_drift(*model.a, x);
  const auto b_alone = reversible::measure_drift(*model.b, into_b);
  CHECK(drift[0] == a_alone);  // in reversible_modules() order: a, then b
  CHECK(drift[1] == b_alone);
  CHECK(drift[1] != reversible::measure_drift(*model.b, x));  // b was not run on the image
  CHECK(drift[0] != drift[1]);
}

TEST_CASE("auto mode's k: the longest chain of inverses whose drift stays within the tolerance") {
  // drift[j] is column j's error when rebuilt from the last of four columns by 3 - j inverses.
  const std::vector<double> drift{1e-3, 1e-6, 1e-7};
  CHECK(reversible::choose_store_every(drift, 1e-5) == 3);  // chains of up to 2 inverses
  CHECK(reversible::choose_store_every(drift, 1e-2) == 0);  // all within: only the last column is kept
  CHECK(reversible::choose_store_every(drift, 1e-8) == 1);  // none within: every column is kept
  CHECK(reversible::choose_store_every({NAN, 1e-9, 1e-9}, 1e-5) == 3);
  CHECK(reversible::choose_store_every({}, 1e-5) == 0);  // one column: nothing to rebuild
}

namespace {
// Alpha 0.05 in float32: every inverse multiplies the rounding error by about 20.
testing::ToyStack drifting_stack(MemoryMode mode) {
  at::manual_seed(5);
  return testing::ToyStack(testing::ToyOptions{3, 2, 5, 0.05}, mode);
}

void train_step(testing::ToyStack& toy, const at::Tensor& x) {
  auto outs = toy->forward(x);
  (outs[0].pow(2).sum() + outs[1].pow(2).sum()).backward();
}
}  // namespace

TEST_CASE("auto mode under a tight budget stores a column every k, chosen from the drift, close to plain autograd") {
  auto toy = drifting_stack(MemoryMode::Auto);
  toy->column_options().memory_budget_mb(1e-6);  // below anything: the plan with the least memory
  at::Tensor x = at::randn({2, 3, 24, 24});
  train_step(toy, x);
  CHECK(toy->column_options().keep_columns() < 5);  // some columns recomputed
  const auto& drift = toy->last_drift();
  REQUIRE(drift.size() == 4);
  INFO("drift ", drift[0], " ", drift[1], " ", drift[2], " ", drift[3]);
  CHECK(drift[0] > 1e-3);  // full mode would rebuild column 0 badly
  const int64_t k = toy->column_options().store_every();
  CHECK(k == reversible::choose_store_every(drift, 1e-5));
  CHECK(k >= 2);  // fewer stored columns than column mode
  CHECK(k <= 3);

  reversible::ModeComparison cmp;
  cmp.mode = MemoryMode::Full;
  const double full_error = reversible::compare_memory_modes(
                                *toy, [&](const at::Tensor& in) { return toy->forward(in); }, x, cmp)
                                .worst("parameter gradients")
                                .relative;
  cmp.mode = MemoryMode::Auto;
  cmp.memory_budget_mb = 1e-6;
  const double auto_error = reversible::compare_memory_modes(
                                *toy, [&](const at::Tensor& in) { return toy->forward(in); }, x, cmp)
                                .worst("parameter gradients")
                                .relative;
  INFO("full ", full_error, ", auto ", auto_error);
  CHECK(full_error > 1e-3);
  CHECK(auto_error < 1e-4);
}

TEST_CASE("full mode warns once per column whose rebuilt states drift beyond the threshold") {
  std::ostringstream log;
  auto capture = std::make_unique<LogCapture>(log);
  auto toy = drifting_stack(MemoryMode::Full);
  toy->column_options().drift_check_every(1);  // read the monitor on every step
  at::Tensor x = at::randn({2, 3, 6, 6});
  for (int step = 0; step < 3; ++step) train_step(toy, x);
  capture.reset();
  const std::string text = log.str();
  INFO(text);
  CHECK(text.find("memory mode full: column 0 is rebuilt by the inverse with relative error") != std::string::npos);
  CHECK(text.find("column 0") == text.rfind("column 0"));  // once, though three steps read the monitor
  CHECK(text.find("column 3") == std::string::npos);       // one inverse from the last: within 1e-3
}

TEST_CASE("auto mode plans from the costs it measured: a budget buys kept columns, and gradients stay exact") {
  at::manual_seed(6);
  testing::ToyStack toy(testing::ToyOptions{3, 2, 4, 0.5, 0.1}, MemoryMode::Auto);
  toy->to(at::kDouble);
  const at::Tensor x = at::randn({2, 3, 32, 32}, at::kDouble);
  toy->column_options().memory_budget_mb(1e-6);
  train_step(toy, x);
  const auto& costs = toy->column_costs();
  REQUIRE(costs.has_value());
  CHECK(costs->columns() == 4);
  CHECK(costs->input_numel == 2 * 3 * 32 * 32);  // the probe: the first two samples
  // Each plan the planner weighs is chosen when the budget is exactly its predicted memory (the curve it walks),
  // unless a plan with less recompute needs no more.
  const auto scaled = costs->scaled(x.numel());
  const int64_t bound = reversible::choose_store_every(toy->last_drift(), toy->column_options().drift_tolerance());
  for (const auto& plan : reversible::candidate_plans(scaled, bound)) {
    toy->column_options().memory_budget_mb((plan.activation_bytes + 0.5) / 1048576.0);
    toy->recheck_drift();
    train_step(toy, x);
    const auto& chosen = toy->memory_plan();
    INFO("budget for ", plan.describe(4), ": chose ", chosen.describe(4));
    CHECK(chosen.activation_bytes <= plan.activation_bytes);
    CHECK(chosen.recompute_ms <= plan.recompute_ms);
    CHECK(toy->column_options().keep_columns() == chosen.keep_columns);
    CHECK(toy->column_options().store_every() == chosen.store_every);
  }
  // A budget of plain autograd's memory keeps every column: no recompute at all.
  toy->column_options().memory_budget_mb(1e6);
  toy->recheck_drift();
  train_step(toy, x);
  CHECK(toy->memory_plan().keep_columns == 4);
  // A budget halfway keeps some columns and recomputes others, with plain autograd's gradients.
  const auto plans = reversible::candidate_plans(scaled, bound);
  reversible::ModeComparison cmp;
  cmp.mode = MemoryMode::Auto;
  cmp.memory_budget_mb = (plans[plans.size() / 2].activation_bytes + 0.5) / 1048576.0;
  const auto report = reversible::compare_memory_modes(
      *toy, [&](const at::Tensor& in) { return toy->forward(in); }, x, cmp);
  const auto& middle = toy->memory_plan();
  INFO("middle plan: ", middle.describe(4));
  CHECK(middle.keep_columns > 0);
  CHECK(middle.keep_columns < 4);
  CHECK(report.rng_stream_equal);
  CHECK(report.within(1e-8));
}

TEST_CASE("full and auto modes run BatchNorm levels on 1x1 maps: the drift monitor and cost probe take two samples") {
  // One sample has a single value per channel on a 1x1 map, which BatchNorm in training mode refuses; the step
  // itself (batch 2) is fine, so the probes must be too.
  for (MemoryMode mode : {MemoryMode::Full, MemoryMode::Auto}) {
    INFO(reversible::to_string(mode));
    at::manual_seed(8);
    testing::ToyOptions options;
    options.columns = 3;
    options.alpha = 0.5;
    options.batchnorm = true;
    testing::ToyStack toy(options, mode);
    toy->to(at::kDouble);
    const at::Tensor x = at::randn({2, 3, 1, 1}, at::kDouble);
    reversible::ModeComparison cmp;
    cmp.mode = mode;
    const auto report = reversible::compare_memory_modes(
        *toy, [&](const at::Tensor& in) { return toy->forward(in); }, x, cmp);
    CHECK(report.within(reversible::default_tolerance(mode, at::kDouble)));
    CHECK(toy->last_drift().size() == 2);
    if (mode == MemoryMode::Auto) CHECK(toy->column_costs()->input_numel == 2 * 3);
  }
}

namespace {
// A reversible part whose grid a backbone got wrong: a null level in its second column.
struct BrokenPart : torch::nn::Module, reversible::ReversibleModule {
  explicit BrokenPart(MemoryMode mode) {
    grid_.levels = {{std::make_shared<testing::ToyLevel>(testing::ToyOptions{}, false)}, {nullptr}};
    grid_.alphas = {{at::Tensor()}, {at::ones({1})}};
    options_.memory_mode(mode);
  }
  at::Tensor column_input(const at::Tensor& x) override { return x; }
  std::vector<at::Tensor> forward(const at::Tensor& x) { return run_columns(x); }
};
}  // namespace

TEST_CASE("a malformed grid is named before the drift monitor or auto's cost probe runs it, in every mode") {
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full, MemoryMode::Auto}) {
    INFO(reversible::to_string(mode));
    BrokenPart part(mode);
    CHECK_THROWS_WITH_AS(part.forward(at::randn({2, 3, 4, 4})), "column grid: level 0 of column 1 is null", InputError);
  }
}
