#include "heads/detect_loss.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <cmath>

#include "heads/detect.h"
#include "reversible/testing.h"

using namespace revkit;

TEST_CASE("loss for one target and one anchor, by hand") {
  // One level (stride 8, a 2x2 grid on a 16x16 image), one 8x8-pixel anchor (1x1 cells), one class.
  Detect head(DetectOptions(1, {{8, 8}}, {4}));
  head->set_strides({8});
  at::Tensor raw = at::zeros({1, 1, 2, 2, 6});
  raw[0][0][0][0][4] = 1.0;  // objectness logit of the target's cell
  // A 4x4-pixel box centred at (4, 4): grid (0.5, 0.5, 0.5, 0.5), cell (0, 0); no neighbour is within 0.5.
  at::Tensor targets = at::tensor({0.0f, 0.0f, 0.25f, 0.25f, 0.25f, 0.25f}).view({1, 6});
  DetectLossOptions gains;  // box 0.05, obj 1, cls 0.5, unscaled
  const DetectLoss loss = detect_loss(*head, {raw}, targets, gains);
  // Prediction with zero logits: xy = 2 * 0.5 - 0.5 = 0.5, wh = (2 * 0.5)^2 * 1 = 1: concentric with the
  // target, IoU = 0.25 / 1, no distance or aspect penalty: CIoU 0.25.
  CHECK(loss.box == doctest::Approx(0.05 * (1 - 0.25)));
  // Objectness: target 0.25 at the logit-1 cell, 0 at three logit-0 cells; mean BCE times level balance 4.
  const double s = 1 / (1 + std::exp(-1.0));
  const double bce_cell = -(0.25 * std::log(s) + 0.75 * std::log(1 - s));
  CHECK(loss.obj == doctest::Approx(4.0 * (bce_cell + 3 * std::log(2.0)) / 4).epsilon(1e-5));
  CHECK(loss.cls == 0.0);  // one class: no class loss
  CHECK(loss.total.item<double>() == doctest::Approx(loss.box + loss.obj).epsilon(1e-5));

  // Two images in the batch: the total is multiplied by the batch size.
  const DetectLoss two = detect_loss(*head, {at::cat({raw, raw})}, targets, gains);
  CHECK(two.total.item<double>() == doctest::Approx(2 * (two.box + two.obj + two.cls)).epsilon(1e-5));
}

TEST_CASE("class loss, neighbour cells and anchor_t") {
  Detect head(DetectOptions(3, {{8, 8}}, {4}));
  head->set_strides({8});
  at::Tensor raw = at::zeros({1, 1, 4, 4, 8}, at::TensorOptions().requires_grad(false)).requires_grad_();
  // Centre (1.3, 1.3) in grid units: the cell (1, 1) plus the left and top neighbours (x % 1 < 0.5, x > 1).
  at::Tensor targets = at::tensor({0.0f, 2.0f, 1.3f / 4, 1.3f / 4, 0.25f, 0.25f}).view({1, 6});
  DetectLoss loss = detect_loss(*head, {raw}, targets, DetectLossOptions{});
  CHECK(loss.cls == doctest::Approx(0.5 * std::log(2.0)));  // zero logits: BCE log 2 for every class
  loss.total.backward();
  at::Tensor obj_grad = raw.grad().select(-1, 0).abs()[0][0] > 0;  // x-offset gradients mark assigned cells
  CHECK(obj_grad[1][1].item<bool>());
  CHECK(obj_grad[1][0].item<bool>());
  CHECK(obj_grad[0][1].item<bool>());
  CHECK(obj_grad.sum().item<int64_t>() == 3);
  // A box 5x larger than the anchor is beyond anchor_t = 4: nothing assigned, no box loss.
  at::Tensor big = at::tensor({0.0f, 0.0f, 0.5f, 0.5f, 1.0f, 1.0f}).view({1, 6});
  CHECK(detect_loss(*head, {raw.detach()}, big, DetectLossOptions{}).box == 0.0);
  CHECK(detect_loss(*head, {raw.detach()}, at::zeros({0, 6}), DetectLossOptions{}).box == 0.0);
}

TEST_CASE("Ultralytics' gain scaling for levels, classes and image size") {
  const auto o = DetectLossOptions::scaled(3, 20, 320);
  CHECK(o.box == doctest::Approx(0.05));
  CHECK(o.cls == doctest::Approx(0.5 * 20 / 80));
  CHECK(o.obj == doctest::Approx(0.25));
}

TEST_CASE("data-parallel split: the ranks' losses sum to the whole batch's loss, and so do their gradients") {
  at::manual_seed(6);
  Detect head(DetectOptions(3, {{10, 13, 16, 30}, {30, 61, 62, 45}}, {8, 8}));
  head->set_strides({8, 16});
  std::vector<at::Tensor> raw = {at::randn({4, 2, 4, 4, 8}, at::kDouble).requires_grad_(),
                                 at::randn({4, 2, 2, 2, 8}, at::kDouble).requires_grad_()};
  // Uneven targets: three on image 0, one on image 3.
  const at::Tensor targets = at::tensor({0.0, 1.0, 0.3, 0.4, 0.2, 0.3, 0.0, 2.0, 0.6, 0.6, 0.4, 0.5,
                                         0.0, 0.0, 0.5, 0.2, 0.1, 0.1, 3.0, 1.0, 0.7, 0.7, 0.3, 0.2},
                                        at::kDouble)
                                 .view({4, 6});
  DetectLossOptions o;
  const DetectLoss whole = detect_loss(*head, raw, targets, o);
  whole.total.backward();
  const std::vector<at::Tensor> whole_grads = {raw[0].grad().clone(), raw[1].grad().clone()};
  raw[0].mutable_grad().zero_();
  raw[1].mutable_grad().zero_();

  // Rank r holds images 2r and 2r + 1; the counts are summed over both ranks by hand.
  auto half = [&](int r) {
    std::vector<at::Tensor> maps = {raw[0].narrow(0, 2 * r, 2), raw[1].narrow(0, 2 * r, 2)};
    at::Tensor mine = targets.index({(targets.select(1, 0) >= 2 * r) & (targets.select(1, 0) < 2 * r + 2)}).clone();
    mine.select(1, 0).sub_(2 * r);
    return std::make_pair(maps, mine);
  };
  std::vector<double> counts_of[2];
  DetectLossOptions probe;
  for (int r = 0; r < 2; ++r) {
    auto [maps, mine] = half(r);
    probe.sum_over_ranks = [&, r](const std::vector<double>& c) {
      counts_of[r] = c;
      return c;
    };
    detect_loss(*head, maps, mine, probe);
  }
  DetectLossOptions split;
  split.world_size = 2;
  split.sum_over_ranks = [&](const std::vector<double>& c) {
    std::vector<double> sum(c.size());
    for (size_t k = 0; k < c.size(); ++k) sum[k] = counts_of[0][k] + counts_of[1][k];
    return sum;
  };
  double total = 0;
  for (int r = 0; r < 2; ++r) {
    auto [maps, mine] = half(r);
    const DetectLoss part = detect_loss(*head, maps, mine, split);
    total += part.total.item<double>();
    part.total.backward();
  }
  CHECK(total == doctest::Approx(whole.total.item<double>()).epsilon(1e-6));
  CHECK(reversible::relative_difference(raw[0].grad(), whole_grads[0]) < 1e-5);  // the loss computes in float32
  CHECK(reversible::relative_difference(raw[1].grad(), whole_grads[1]) < 1e-5);  // the loss computes in float32
}
