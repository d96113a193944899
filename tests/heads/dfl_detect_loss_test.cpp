#include "heads/dfl_detect_loss.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/safetensors.h"
#include "heads/dfl_detect.h"

using namespace revkit;

namespace {

// tests/fixtures/yolov8/v8_loss.safetensors: Ultralytics 8.4's v8DetectionLoss in float64 on a yolov8n head with
// 3 classes, a 2x3x128x128 batch, three target cases (see the README there).
const Safetensors& fixture() {
  static const Safetensors f = read_safetensors(REVKIT_TEST_FIXTURES "/yolov8/v8_loss.safetensors");
  return f;
}
const at::Tensor& tensor(const std::string& name) { return fixture().tensors.at(name); }

DflDetect fixture_head() {
  DflDetect head(DflDetectOptions(3, {64, 128, 256}));
  head->set_strides({8, 16, 32});
  return head;
}

at::Tensor targets_of(const std::string& c) {
  return at::cat({tensor(c + ".batch_idx").view({-1, 1}), tensor(c + ".cls").view({-1, 1}), tensor(c + ".bboxes")}, 1);
}

void check_close(const at::Tensor& got, const at::Tensor& want, const std::string& what, double tol = 1e-6) {
  REQUIRE_MESSAGE(got.sizes() == want.sizes(), what, ": shape ", got.sizes(), " vs ", want.sizes());
  const double err = (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
  CHECK_MESSAGE(err <= tol * std::max(1.0, want.to(at::kDouble).abs().max().item<double>()), what, ": max error ", err);
}

}  // namespace

TEST_CASE("the v8 loss equals Ultralytics' v8DetectionLoss, parts and gradients, in float64") {
  const DflDetect head = fixture_head();
  for (const std::string c : {"case1", "case2", "case3"}) {
    CAPTURE(c);
    std::vector<at::Tensor> raw;
    for (int i = 0; i < 3; ++i) raw.push_back(tensor("pred" + std::to_string(i)).clone().requires_grad_(true));
    const HeadLoss loss = dfl_detect_loss(*head, raw, targets_of(c));
    // loss_items: the parts with their gains; the returned loss is the same times the batch size (2).
    const at::Tensor items = tensor(c + ".loss_items");
    for (int k = 0; k < 3; ++k) CHECK(loss.parts[k] == doctest::Approx(items[k].item<double>()).epsilon(1e-9));
    CHECK(loss.total.item<double>() == doctest::Approx(tensor(c + ".total").item<double>()).epsilon(1e-9));
    CHECK(tensor(c + ".loss").sum().item<double>() == doctest::Approx(tensor(c + ".total").item<double>()));
    loss.total.backward();
    for (int i = 0; i < 3; ++i)
      check_close(raw[i].grad(), tensor(c + ".grad_pred" + std::to_string(i)),
                  c + " gradient of level " + std::to_string(i));
  }
}

TEST_CASE("the task-aligned assigner picks Ultralytics' anchors and soft targets") {
  const auto ties = nlohmann::json::parse(fixture().metadata.at("topk_tie_rows"));
  for (const std::string c : {"case1", "case2", "case3"}) {
    CAPTURE(c);
    const std::string a = c + ".assigner.";
    const TaskAlignedAssignment got =
        task_aligned_assign(tensor(a + "pd_scores"), tensor(a + "pd_bboxes"), tensor(a + "anc_points"),
                            tensor(a + "gt_labels"), tensor(a + "gt_bboxes"), tensor(a + "mask_gt"), 3, 16.0);
    check_close(got.target_scores, tensor(a + "target_scores"), "target scores", 1e-9);
    check_close(got.target_bboxes, tensor(a + "target_bboxes"), "target boxes", 1e-9);
    // Which zero-metric anchors fill a top-10 is a tie-break of topk; the rows listed in the fixture may differ
    // there (their target scores are 0 either way, checked above).
    const bool tie = ties.contains(c) && !ties[c].empty();
    if (!tie) {
      CHECK(at::equal(got.fg_mask, tensor(a + "fg_mask")));
      CHECK(at::equal(got.target_gt_idx, tensor(a + "target_gt_idx").to(at::kLong)));
      CHECK(at::equal(got.target_labels, tensor(a + "target_labels").to(at::kLong)));
    } else {
      // Off the tie rows' images... the foreground where the soft targets are positive agrees exactly.
      const at::Tensor positive = tensor(a + "target_scores").sum(-1) > 0;
      CHECK(at::equal(got.fg_mask.logical_and(positive), tensor(a + "fg_mask").logical_and(positive)));
      CHECK(at::equal(got.target_gt_idx.masked_select(positive),
                      tensor(a + "target_gt_idx").to(at::kLong).masked_select(positive)));
    }
  }
}

TEST_CASE("v8 loss: a data-parallel split into two ranks sums to the whole batch's loss and gradients") {
  const DflDetect head = fixture_head();
  std::vector<at::Tensor> whole;
  for (int i = 0; i < 3; ++i) whole.push_back(tensor("pred" + std::to_string(i)).clone().requires_grad_(true));
  const at::Tensor targets = targets_of("case1");
  const HeadLoss all = dfl_detect_loss(*head, whole, targets);
  all.total.backward();

  // Each rank holds one image; the soft-target sums are exchanged through sum_over_ranks.
  std::vector<double> sums(2, 0.0);
  for (int r = 0; r < 2; ++r) {  // first pass: what each rank would contribute
    std::vector<at::Tensor> mine;
    for (int i = 0; i < 3; ++i) mine.push_back(tensor("pred" + std::to_string(i)).narrow(0, r, 1));
    at::Tensor t = targets.index({targets.select(1, 0) == r}).clone();
    t.select(1, 0).zero_();
    LossContext probe;
    probe.sum_over_ranks = [&, r](const std::vector<double>& v) {
      sums[r] = v[0];
      return v;
    };
    dfl_detect_loss(*head, mine, t, probe);
  }
  double total = 0;
  std::array<double, 3> parts{};
  for (int r = 0; r < 2; ++r) {
    std::vector<at::Tensor> mine;
    for (int i = 0; i < 3; ++i)
      mine.push_back(tensor("pred" + std::to_string(i)).narrow(0, r, 1).clone().requires_grad_(true));
    at::Tensor t = targets.index({targets.select(1, 0) == r}).clone();
    t.select(1, 0).zero_();
    LossContext split;
    split.world_size = 2;
    split.sum_over_ranks = [&](const std::vector<double>&) { return std::vector<double>{sums[0] + sums[1]}; };
    const HeadLoss part = dfl_detect_loss(*head, mine, t, split);
    part.total.backward();
    total += part.total.item<double>();
    for (int k = 0; k < 3; ++k) parts[k] += part.parts[k];
    for (int i = 0; i < 3; ++i)
      check_close(mine[i].grad(), whole[i].grad().narrow(0, r, 1), "rank " + std::to_string(r), 1e-9);
  }
  CHECK(total == doctest::Approx(all.total.item<double>()).epsilon(1e-12));
  for (int k = 0; k < 3; ++k) CHECK(parts[k] == doctest::Approx(all.parts[k]).epsilon(1e-12));
}

TEST_CASE("v8 loss: four anchors on one target, by hand") {
  // One level, stride 8, a 2x2 grid on 16x16 pixels, one class, all logits zero; the target is the whole image.
  DflDetect head(DflDetectOptions(1, {16}));
  head->set_strides({8});
  const at::Tensor raw = at::zeros({1, 64 + 1, 2, 2}, at::kDouble);
  const at::Tensor targets = at::tensor({0.0, 0.0, 0.5, 0.5, 1.0, 1.0}, at::kDouble).view({1, 6});
  const HeadLoss loss = dfl_detect_loss(*head, {raw}, targets);
  // Zero box logits: every side's expected distance is the mean bin, 7.5 cells, so each cell predicts a 15x15-cell
  // box about its centre, holding the 2x2-cell target whose centre is (0.5, 0.5) cells away: IoU 4/225, centre
  // distance^2 0.5 over the enclosing diagonal^2 450, same aspect: CIoU 4/225 - 1/900 = 1/60 for all four cells.
  // All four are inside the target and in its top 10, with align metric m = 0.5^0.5 c^6; each gets the soft target
  // m c / (m + 1e-9), the metric scaled to the best CIoU (the eps, as in Ultralytics, is not small next to a metric
  // this low); their sum is clamped to 1.
  const double c = 1.0 / 60.0, m = std::sqrt(0.5) * std::pow(c, 6), t = m * c / (m + 1e-9);
  CHECK(loss.parts[0] == doctest::Approx(7.5 * 4 * (1 - c) * t).epsilon(1e-6));         // (1 - CIoU) x weight
  CHECK(loss.parts[1] == doctest::Approx(0.5 * 4 * std::log(2.0)).epsilon(1e-9));       // BCE of logit 0, any target
  CHECK(loss.parts[2] == doctest::Approx(1.5 * 4 * t * std::log(16.0)).epsilon(1e-6));  // uniform bins: log 16
  CHECK(loss.total.item<double>() == doctest::Approx(loss.parts[0] + loss.parts[1] + loss.parts[2]));
}

TEST_CASE("v8 loss: DFL targets beyond the last bin are clamped to reg_max - 1.01") {
  // One level, stride 8, a 32x1 grid (256x8 pixels), one class; the target is the whole image, so the central
  // anchors lie more than 15 cells from its left or right edge. Side 0 (left) favours bin 15 (logit 3).
  DflDetect head(DflDetectOptions(1, {16}));
  head->set_strides({8});
  at::Tensor raw = at::zeros({1, 64 + 1, 1, 32}, at::kDouble);
  raw.narrow(1, 15, 1).fill_(3.0);
  const at::Tensor targets = at::tensor({0.0, 0.0, 0.5, 0.5, 1.0, 1.0}, at::kDouble).view({1, 6});
  const HeadLoss loss = dfl_detect_loss(*head, {raw}, targets);

  // The assignment, from the assigner (checked against Ultralytics above) on the boxes these logits predict.
  const double z = 15 + std::exp(3.0), left = (105.0 + 15 * std::exp(3.0)) / z;  // expected bins: sum b p_b
  std::vector<double> boxes, points;
  for (int i = 0; i < 32; ++i) {
    const double x = i + 0.5;
    points.insert(points.end(), {8 * x, 4.0});
    boxes.insert(boxes.end(), {8 * (x - left), 8 * (0.5 - 7.5), 8 * (x + 7.5), 8 * (0.5 + 7.5)});
  }
  const auto a = task_aligned_assign(at::full({1, 32, 1}, 0.5, at::kDouble), at::tensor(boxes).view({1, 32, 4}),
                                     at::tensor(points).view({32, 2}), at::zeros({1, 1, 1}, at::kDouble),
                                     at::tensor({0.0, 0.0, 256.0, 8.0}, at::kDouble).view({1, 1, 4}),
                                     at::ones({1, 1, 1}, at::kDouble), 1, 8.0);
  // Cross-entropy against the two bins around each side's distance, clamped to [0, 14.99].
  auto logp = [&](int side, int bin) { return (side == 0 && bin == 15 ? 3.0 : 0.0) - std::log(side == 0 ? z : 16.0); };
  auto ce = [&](int side, double d) {
    d = std::min(std::max(d, 0.0), 14.99);
    const int lo = static_cast<int>(d);
    const double w_lo = lo + 1 - d;
    return -(w_lo * logp(side, lo) + (1 - w_lo) * logp(side, lo + 1));
  };
  double weighted = 0, weights = 0, clamped = 0;
  for (int i = 0; i < 32; ++i) {
    const double t = a.target_scores[0][i][0].item<double>();
    if (!a.fg_mask[0][i].item<bool>()) continue;
    const double x = i + 0.5;
    if (x > 14.99 || 32 - x > 14.99) ++clamped;
    weighted += t * (ce(0, x) + ce(1, 0.5) + ce(2, 32 - x) + ce(3, 0.5)) / 4;
    weights += t;
  }
  REQUIRE(clamped > 0);
  CHECK(loss.parts[2] == doctest::Approx(1.5 * weighted / std::max(weights, 1.0)).epsilon(1e-9));
}
