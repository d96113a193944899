#include "engine/optimizer.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

using namespace revkit;

TEST_CASE("three parameter groups by Ultralytics' rule") {
  torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).bias(false)), torch::nn::BatchNorm2d(4),
                            torch::nn::Linear(4, 2));
  const ParameterGroups g = group_parameters(*net);
  CHECK(g.biases.size() == 2);        // BatchNorm's and Linear's
  CHECK(g.weights.size() == 2);       // Conv's and Linear's
  CHECK(g.norm_weights.size() == 1);  // BatchNorm's
  CHECK(g.norm_weights[0].sizes() == at::IntArrayRef({4}));
  CHECK(g.weights[0].dim() == 4);
}

TEST_CASE("Nesterov SGD: torch.optim.SGD's update, by hand") {
  ParameterGroups g;
  g.weights = {at::ones({1}).requires_grad_()};
  g.biases = {at::ones({1}).requires_grad_()};
  NesterovSgd sgd(g, 0.1, 0.9, 0.5);
  for (int step = 0; step < 2; ++step) {
    g.weights[0].mutable_grad() = at::full({1}, 0.5);
    g.biases[0].mutable_grad() = at::full({1}, 0.5);
    sgd.step();
  }
  // Bias (no decay): buf 0.5, d = 0.5 + 0.9 * 0.5 = 0.95, p = 0.905; buf 0.95, d = 1.355, p = 0.7695.
  CHECK(g.biases[0].item<double>() == doctest::Approx(0.7695));
  // Weight (decay 0.5): d0 = 0.5 + 0.5 = 1, buf 1, step 1.9 -> 0.81; d1 = 0.5 + 0.405 = 0.905, buf 1.805,
  // step 0.905 + 1.6245 = 2.5295 -> 0.81 - 0.25295 = 0.55705.
  CHECK(g.weights[0].item<double>() == doctest::Approx(0.55705));
  const auto state = sgd.state();
  CHECK(state.size() == 2);
  CHECK(state.at("sgd.0.0").item<double>() == doctest::Approx(0.95));
  CHECK(state.at("sgd.1.0").item<double>() == doctest::Approx(1.805));

  // The momentum survives a checkpoint: a fresh optimizer with the state steps identically.
  ParameterGroups h;
  h.weights = {g.weights[0].detach().clone().requires_grad_()};
  h.biases = {g.biases[0].detach().clone().requires_grad_()};
  NesterovSgd restored(h, 0.1, 0.9, 0.5);
  restored.load_state(state, "state");
  for (auto* p : {&g, &h}) {
    p->weights[0].mutable_grad() = at::full({1}, 0.25);
    p->biases[0].mutable_grad() = at::full({1}, 0.25);
  }
  sgd.step();
  restored.step();
  CHECK(at::equal(g.weights[0], h.weights[0]));
  CHECK(at::equal(g.biases[0], h.biases[0]));
  sgd.zero_grad();
  CHECK_FALSE(g.weights[0].grad().defined());
}

TEST_CASE("restored momentum keeps a channels-last weight's layout") {
  ParameterGroups g;
  g.weights = {at::randn({4, 3, 2, 2}).contiguous(at::MemoryFormat::ChannelsLast).requires_grad_()};
  NesterovSgd sgd(g, 0.1, 0.9, 0.0);
  const at::Tensor saved = at::randn({4, 3, 2, 2});  // as a checkpoint stores it: contiguous
  sgd.load_state({{"sgd.1.0", saved}}, "state");
  const at::Tensor& buf = sgd.groups()[1].momentum_buffers[0];
  CHECK(buf.strides() == g.weights[0].strides());
  CHECK(at::equal(buf, saved));
  const at::Tensor grad = restore_like(saved.to(at::kDouble), g.weights[0]);
  CHECK(grad.is_contiguous(at::MemoryFormat::ChannelsLast));
  CHECK(grad.dtype() == at::kFloat);
  CHECK(at::equal(grad, saved));
}

TEST_CASE("schedule: linear and cosine factors, YOLOv5's warm-up of lr, momentum and accumulation") {
  ScheduleOptions o;
  TrainingSchedule linear(o, 10, 50, 16);
  CHECK(linear.lr_factor(0) == doctest::Approx(1.0));
  CHECK(linear.lr_factor(5) == doctest::Approx(0.505));
  CHECK(linear.lr_factor(10) == doctest::Approx(0.01));
  o.cosine = true;
  TrainingSchedule cosine(o, 10, 50, 16);
  CHECK(cosine.lr_factor(5) == doctest::Approx(0.505));
  CHECK(cosine.lr_factor(2) == doctest::Approx(1 - 0.99 * (1 - std::cos(0.2 * M_PI)) / 2));
  o.cosine = false;

  CHECK(linear.warmup_iterations() == 150);                          // 3 epochs x 50 batches
  CHECK(TrainingSchedule(o, 10, 4, 16).warmup_iterations() == 100);  // at least 100
  CHECK(linear.scaled_weight_decay() == doctest::Approx(5e-4));      // 16 x 4 = 64

  ParameterGroups g;
  g.biases = {at::zeros({1})};
  g.weights = {at::zeros({1})};
  g.norm_weights = {at::zeros({1})};
  NesterovSgd sgd(g, 0.01, 0.937, 5e-4);
  linear.apply(sgd, 0, 0);
  CHECK(sgd.groups()[0].lr == doctest::Approx(0.1));
  CHECK(sgd.groups()[1].lr == doctest::Approx(0.0));
  CHECK(sgd.groups()[0].momentum == doctest::Approx(0.8));
  CHECK(linear.accumulate() == 1);
  linear.apply(sgd, 75, 1);  // halfway: lr to 0.01 x lf(1) = 0.00901
  CHECK(sgd.groups()[0].lr == doctest::Approx(0.1 + (0.00901 - 0.1) / 2));
  CHECK(sgd.groups()[2].lr == doctest::Approx(0.00901 / 2));
  CHECK(sgd.groups()[1].momentum == doctest::Approx(0.8685));
  CHECK(linear.accumulate() == 2);  // 1 + (4 - 1) / 2 = 2.5, rounded half to even as numpy does
  // Warm-up's last iteration, 150, is epoch 3's first: epoch 3 keeps lf(3), later epochs run one factor behind
  // (train.py's LambdaLR), as its logged x/lr0 shows: 0.0003475 = 0.01 x lf(78) in epoch 79 of 80.
  linear.apply(sgd, 170, 3);
  CHECK(sgd.groups()[1].lr == doctest::Approx(0.01 * linear.lr_factor(3)));
  linear.apply(sgd, 200, 4);
  CHECK(sgd.groups()[1].lr == doctest::Approx(0.01 * linear.lr_factor(3)));
  linear.apply(sgd, 400, 8);
  CHECK(sgd.groups()[1].lr == doctest::Approx(0.01 * linear.lr_factor(7)));
  CHECK(sgd.groups()[1].momentum == doctest::Approx(0.937));
  CHECK(linear.accumulate() == 4);
}

TEST_CASE("schedule without warm-up: epoch 0 and 1 at lf(0), then one factor behind, as train.py's LambdaLR") {
  ScheduleOptions o;
  o.warmup_epochs = 0;
  TrainingSchedule s(o, 80, 8, 16);
  ParameterGroups g;
  g.biases = {at::zeros({1})};
  g.weights = {at::zeros({1})};
  g.norm_weights = {at::zeros({1})};
  NesterovSgd sgd(g, 0.01, 0.937, 5e-4);
  for (const auto& [epoch, expected] : std::vector<std::pair<int64_t, double>>{{0, 0.01}, {1, 0.01}, {79, 0.0003475}}) {
    s.apply(sgd, epoch * 8, epoch);
    CHECK(sgd.groups()[0].lr == doctest::Approx(expected));
  }
}

TEST_CASE("EMA: YOLOv5's decay ramp, parameters and float buffers averaged") {
  torch::nn::Sequential model(torch::nn::Linear(2, 1), torch::nn::BatchNorm1d(1));
  torch::nn::Sequential shadow(torch::nn::Linear(2, 1), torch::nn::BatchNorm1d(1));
  ModelEma ema(*model, *shadow);
  CHECK(at::equal(shadow->parameters()[0], model->parameters()[0]));
  {
    at::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(1.0);
  }
  const at::Tensor before = shadow->parameters()[0].clone();
  ema.update(*model);
  const double d = 0.9999 * (1 - std::exp(-1.0 / 2000));
  CHECK(ema.decay() == doctest::Approx(d));
  CHECK(at::allclose(shadow->parameters()[0], before * d + (before + 1) * (1 - d)));
  CHECK(ema.updates() == 1);
}
