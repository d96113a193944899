#include "heads/boxes.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

using namespace revkit;

TEST_CASE("box IoU: hand values") {
  at::Tensor a = at::tensor({0.f, 0.f, 2.f, 2.f}).view({1, 4});
  at::Tensor b = at::tensor({1.f, 1.f, 3.f, 3.f, 0.f, 0.f, 2.f, 2.f, 5.f, 5.f, 6.f, 6.f}).view({3, 4});
  at::Tensor iou = box_iou(a, b);
  CHECK(iou[0][0].item<float>() == doctest::Approx(1.0 / 7.0));
  CHECK(iou[0][1].item<float>() == doctest::Approx(1.0));
  CHECK(iou[0][2].item<float>() == 0.0f);
}

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

TEST_CASE("class-aware NMS: a box suppresses only its own class, above the threshold, in order") {
  // Sorted best first: 0 and 1 overlap by IoU 9/11 (same class), 2 overlaps 0 but is another class, 3 overlaps
  // 0 by IoU 1/3 only.
  const at::Tensor boxes =
      at::tensor({0.f, 0.f, 10.f, 10.f, 1.f, 0.f, 11.f, 10.f, 0.f, 0.f, 10.f, 10.f, 5.f, 0.f, 15.f, 10.f}).view({4, 4});
  const at::Tensor cls = at::tensor({0, 0, 1, 0}, at::kLong);
  CHECK(class_aware_nms(boxes, cls, 0.5, 300).equal(at::tensor({0, 2, 3}, at::kLong)));
  CHECK(class_aware_nms(boxes, cls, 0.3, 300).equal(at::tensor({0, 2}, at::kLong)));
  CHECK(class_aware_nms(boxes, cls, 0.5, 2).equal(at::tensor({0, 2}, at::kLong)));
  CHECK(class_aware_nms(at::zeros({0, 4}), at::zeros({0}, at::kLong), 0.5, 300).numel() == 0);
}
