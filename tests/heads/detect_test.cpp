#include "heads/detect.h"

#include "heads/boxes.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <torch/nn/modules/conv.h>

#include <cmath>

using namespace revkit;

TEST_CASE("Detect: anchors in grid units, Ultralytics' bias initialisation, raw training maps") {
  Detect d(DetectOptions(2, {{10, 13, 16, 30}, {30, 61, 62, 45}}, {8, 16}));
  CHECK(d->num_anchors() == 2);
  CHECK(d->num_outputs() == 7);
  const at::Tensor before = d->m[0]->as<torch::nn::Conv2d>()->bias.view({2, 7}).clone();
  d->set_strides({8, 16});
  CHECK(d->anchors[0][1][1].item<float>() == doctest::Approx(30.0 / 8));
  CHECK(d->anchors[1][0][0].item<float>() == doctest::Approx(30.0 / 16));
  // Added to the default initialisation, as Ultralytics does.
  at::Tensor added = d->m[0]->as<torch::nn::Conv2d>()->bias.view({2, 7}) - before;
  CHECK(added[1][4].item<float>() == doctest::Approx(std::log(8.0 / std::pow(640.0 / 8, 2))));
  CHECK(added[0][5].item<float>() == doctest::Approx(std::log(0.6 / (2 - 0.99999))));
  CHECK(added[0][0].item<float>() == 0.0f);
  d->set_strides({8, 16});  // again: nothing compounds
  CHECK(d->anchors[0][1][1].item<float>() == doctest::Approx(30.0 / 8));

  auto raw = d->forward({at::randn({3, 8, 4, 6}), at::randn({3, 16, 2, 3})});
  REQUIRE(raw.size() == 2);
  CHECK(raw[0].sizes() == at::IntArrayRef({3, 2, 4, 6, 7}));
  CHECK(raw[1].sizes() == at::IntArrayRef({3, 2, 2, 3, 7}));
}

TEST_CASE("Detect: the class bias of a one-class head starts at log(0.6 / 0.00001), as YOLOv5 v7.0's") {
  Detect d(DetectOptions(1, {{10, 13}}, {4}));
  const at::Tensor before = d->m[0]->as<torch::nn::Conv2d>()->bias.clone();
  d->set_strides({8});
  const at::Tensor added = d->m[0]->as<torch::nn::Conv2d>()->bias - before;
  CHECK(added[5].item<float>() == doctest::Approx(11.0020998));  // ln 60000; 0.99 would give ln 60 = 4.094
}

TEST_CASE("decode: xy = (2 sigmoid - 0.5 + grid) * stride, wh = (2 sigmoid)^2 * anchor") {
  Detect d(DetectOptions(1, {{10, 20}}, {4}));
  d->set_strides({8});
  at::Tensor raw = at::zeros({1, 1, 2, 3, 6});  // sigmoid(0) = 0.5
  raw[0][0][1][2][0] = 2.0;                     // x logit of cell (row 1, col 2)
  at::Tensor out = d->decode({raw});
  CHECK(out.sizes() == at::IntArrayRef({1, 6, 6}));
  // cell (0, 0): xy = (1 - 0.5 + 0) * 8 = 4, wh = 1 * anchor
  CHECK(out[0][0][0].item<float>() == doctest::Approx(4.0));
  CHECK(out[0][0][2].item<float>() == doctest::Approx(10.0));
  CHECK(out[0][0][3].item<float>() == doctest::Approx(20.0));
  CHECK(out[0][0][4].item<float>() == doctest::Approx(0.5));
  // cell (1, 2) is box 5: x = (2 sigmoid(2) - 0.5 + 2) * 8, y = (0.5 + 1) * 8
  const double s = 1.0 / (1.0 + std::exp(-2.0));
  CHECK(out[0][5][0].item<float>() == doctest::Approx((2 * s - 0.5 + 2) * 8));
  CHECK(out[0][5][1].item<float>() == doctest::Approx(12.0));
  d->eval();
  CHECK(d->forward({at::zeros({2, 4, 2, 3})})[0].sizes() == at::IntArrayRef({2, 6, 6}));
}

TEST_CASE("NMS equals a brute-force greedy reference, class by class") {
  at::manual_seed(0);
  const int64_t n = 300, nc = 3;
  at::Tensor pred = at::zeros({1, n, nc + 5});
  pred.narrow(2, 0, 2).copy_(at::rand({1, n, 2}) * 100);
  pred.narrow(2, 2, 2).copy_(at::rand({1, n, 2}) * 30 + 5);
  pred.narrow(2, 4, 1).copy_(at::rand({1, n, 1}));
  pred.narrow(2, 5, nc).copy_(at::rand({1, n, nc}));
  const double conf_t = 0.2, iou_t = 0.5;
  const auto got = non_max_suppression(pred, conf_t, iou_t, 300)[0];

  // Reference: score = obj * best class score; greedy over all boxes sorted by score, same class only.
  at::Tensor p = pred[0];
  at::Tensor scores = p.narrow(1, 5, nc) * p.narrow(1, 4, 1);
  auto [conf, cls] = scores.max(1);
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < n; ++i)
    if (p[i][4].item<float>() > conf_t && conf[i].item<float>() > conf_t) idx.push_back(i);
  std::sort(idx.begin(), idx.end(),
            [&](int64_t a, int64_t b) { return conf[a].item<float>() > conf[b].item<float>(); });
  std::vector<int64_t> kept;
  for (int64_t i : idx) {
    bool keep = true;
    for (int64_t k : kept) {
      if (cls[k].item<int64_t>() != cls[i].item<int64_t>()) continue;
      auto box = [&](int64_t j) {
        return at::stack({p[j][0] - p[j][2] / 2, p[j][1] - p[j][3] / 2, p[j][0] + p[j][2] / 2, p[j][1] + p[j][3] / 2})
            .view({1, 4});
      };
      if (box_iou(box(k), box(i)).item<float>() > iou_t) keep = false;
    }
    if (keep) kept.push_back(i);
  }
  REQUIRE(got.size(0) == static_cast<int64_t>(kept.size()));
  for (size_t r = 0; r < kept.size(); ++r) {
    CHECK(got[r][4].item<float>() == doctest::Approx(conf[kept[r]].item<float>()));
    CHECK(got[r][5].item<float>() == static_cast<float>(cls[kept[r]].item<int64_t>()));
  }
  CHECK(non_max_suppression(pred, 0.2, 0.5, 5)[0].size(0) == 5);
  CHECK(non_max_suppression(pred, 2.0, 0.5)[0].size(0) == 0);
}

TEST_CASE("multi-label NMS (val.py's): a candidate for every class above the threshold, suppressed class by class") {
  // Two overlapping boxes that both score for classes 0 and 1, and a third box far away.
  at::Tensor pred = at::tensor({10.f, 10.f, 10.f, 10.f, 0.9f, 0.8f, 0.5f, 0.0f,  //
                                11.f, 10.f, 10.f, 10.f, 0.8f, 0.3f, 0.9f, 0.0f,  //
                                50.f, 50.f, 10.f, 10.f, 0.5f, 0.0f, 0.0f, 0.9f})
                        .view({1, 3, 8});
  const at::Tensor single = non_max_suppression(pred, 0.1, 0.5, 300, /*multi_label=*/false)[0];
  const at::Tensor multi = non_max_suppression(pred, 0.1, 0.5, 300, /*multi_label=*/true)[0];
  // Single-label: box 0 as class 0 (0.72), box 1 as class 1 (0.72), box 2 as class 2 (0.45).
  REQUIRE(single.size(0) == 3);
  // Multi-label candidates: (0, c0) 0.72, (0, c1) 0.45, (1, c0) 0.24, (1, c1) 0.72, (2, c2) 0.45. Boxes 0 and 1
  // overlap by IoU 9/11: in class 0 box 1 is suppressed by box 0, in class 1 box 0 by box 1.
  REQUIRE(multi.size(0) == 3);
  const std::vector<float> conf = {0.72f, 0.72f, 0.45f};
  for (int64_t r = 0; r < 3; ++r) CHECK(multi[r][4].item<float>() == doctest::Approx(conf[r]));
  std::vector<int64_t> classes;
  for (int64_t r = 0; r < 3; ++r) classes.push_back(static_cast<int64_t>(multi[r][5].item<float>()));
  std::sort(classes.begin(), classes.begin() + 2);
  CHECK(classes == std::vector<int64_t>{0, 1, 2});
  // Apart, the two boxes keep all four of their candidates above 0.2.
  pred[0][1][0] = 80.f;
  CHECK(non_max_suppression(pred, 0.2, 0.5, 300, /*multi_label=*/true)[0].size(0) == 5);
  CHECK(non_max_suppression(pred, 0.2, 0.5, 300, /*multi_label=*/false)[0].size(0) == 3);
}
