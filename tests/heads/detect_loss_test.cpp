#include "heads/detect_loss.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <cmath>

#include "heads/detect.h"

using namespace revkit;

TEST_CASE("CIoU against hand values") {
  auto ciou = [](std::vector<float> a, std::vector<float> b) {
    return bbox_ciou(at::tensor(a).view({1, 4}), at::tensor(b).view({1, 4}))[0].item<double>();
  };
  CHECK(ciou({0, 0, 2, 2}, {0, 0, 2, 2}) == doctest::Approx(1.0));
  // same shape, shifted by 1: IoU 1/3, centre distance 1, enclosing diagonal^2 13
  CHECK(ciou({0, 0, 2, 2}, {1, 0, 2, 2}) == doctest::Approx(1.0 / 3 - 1.0 / 13));
  // same centre, 2x1 against 1x2: IoU 1/3, aspect term v with alpha = v / (v - IoU + 1)
  const double v = 4 / (M_PI * M_PI) * std::pow(std::atan(0.5) - std::atan(2.0), 2);
  CHECK(ciou({0, 0, 2, 1}, {0, 0, 1, 2}) == doctest::Approx(1.0 / 3 - v * v / (v - 1.0 / 3 + 1)));
  // disjoint: IoU 0, only the distance penalty: centres 3 apart, enclosing box 4 x 1
  CHECK(ciou({0, 0, 1, 1}, {3, 0, 1, 1}) == doctest::Approx(-9.0 / 17));
}

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
