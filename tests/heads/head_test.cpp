#include "heads/head.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "heads/dfl_detect.h"

using namespace revkit;

TEST_CASE("a head returns its raw maps in training and decoded boxes in eval") {
  DflDetect head(DflDetectOptions(3, {8}));
  head->set_strides({8});
  const std::vector<at::Tensor> features = {at::randn({1, 8, 4, 4})};
  head->train();
  CHECK(head->forward(features)[0].sizes() == at::IntArrayRef({1, 64 + 3, 4, 4}));
  head->eval();
  at::NoGradGuard no_grad;
  CHECK(head->forward(features)[0].sizes() == at::IntArrayRef({1, 16, 4 + 3}));
  CHECK(at::allclose(head->forward(features)[0], head->decode(head->raw(features))));
}

TEST_CASE("suppress_candidates: best first, per class, at most max_det") {
  // Centre boxes and two class scores each.
  const at::Tensor xywh =
      at::tensor({5.0f, 5.0f, 10.0f, 10.0f, 6.0f, 5.0f, 10.0f, 10.0f, 30.0f, 30.0f, 4.0f, 4.0f}).view({3, 4});
  const at::Tensor scores = at::tensor({0.5f, 0.1f, 0.7f, 0.6f, 0.2f, 0.3f}).view({3, 2});
  const at::Tensor kept = suppress_candidates(xywh, scores, 0.15, 0.5, 300, /*multi_label=*/true);
  // Candidates above 0.15: (0,c0) 0.5, (1,c0) 0.7, (1,c1) 0.6, (2,c0) 0.2, (2,c1) 0.3. Box 1 suppresses box 0 in
  // class 0 (IoU 9 x 10 / 110 = 0.82).
  REQUIRE(kept.size(0) == 4);
  CHECK(kept.select(1, 4).equal(at::tensor({0.7f, 0.6f, 0.3f, 0.2f})));
  CHECK(kept.select(1, 5).equal(at::tensor({0.0f, 1.0f, 1.0f, 0.0f})));
  CHECK(kept[0][0].item<float>() == 1.0f);  // x1 of box 1: 6 - 5
  CHECK(suppress_candidates(xywh, scores, 0.15, 0.5, 2, true).size(0) == 2);
  const at::Tensor single = suppress_candidates(xywh, scores, 0.15, 0.5, 300, false);
  CHECK(single.select(1, 4).equal(at::tensor({0.7f, 0.3f})));  // box 0's best class 0 is suppressed by box 1
}
