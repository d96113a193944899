#include "eval/metrics.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/labels.h"

using namespace revkit;

TEST_CASE("AP with COCO's 101 recall points: hand-computed curves") {
  CHECK(average_precision_101({0.5, 1.0}, {1.0, 1.0}) == doctest::Approx(1.0));
  CHECK(average_precision_101({0.5}, {1.0}) == doctest::Approx(51.0 / 101));  // recall 0..0.5 only
  // A false positive between two hits: precision made monotone from the right, 2/3 beyond recall 0.5.
  CHECK(average_precision_101({0.5, 0.5, 1.0}, {1.0, 0.5, 2.0 / 3}) == doctest::Approx((51 + 50 * 2.0 / 3) / 101));
  CHECK(average_precision_101({}, {}) == 0.0);
}

TEST_CASE("matching: one label takes one detection, same class, per IoU threshold") {
  at::Tensor labels = at::tensor({0.f, 0.f, 0.f, 10.f, 10.f}).view({1, 5});
  // an exact box, a duplicate, a box of another class, and a box with IoU 0.62 (10x10 vs 10x6.2 inside it)
  at::Tensor det = at::tensor({0.f, 0.f, 10.f, 10.f, 0.9f, 0.f,  //
                               0.f, 0.f, 10.f, 10.f, 0.8f, 0.f,  //
                               0.f, 0.f, 10.f, 10.f, 0.7f, 1.f,  //
                               0.f, 0.f, 10.f, 6.2f, 0.6f, 0.f})
                       .view({4, 6});
  at::Tensor c = match_detections(det, labels);
  CHECK(c[0].all().item<bool>());
  CHECK_FALSE(c[1].any().item<bool>());
  CHECK_FALSE(c[2].any().item<bool>());
  CHECK_FALSE(c[3].any().item<bool>());  // the label is taken by the exact box
  at::Tensor alone = match_detections(det.narrow(0, 3, 1), labels);
  CHECK(alone[0].sum().item<int64_t>() == 3);  // 0.50, 0.55, 0.60
}

TEST_CASE("matching in confidence order: the confident box keeps its label even where a later one overlaps more") {
  // One label; the more confident detection overlaps it by IoU 0.6, the less confident one by 0.8. Matching by
  // highest IoU would make the confident box a false positive at 0.5 and halve AP50 (to 0.5).
  at::Tensor labels = at::tensor({0.f, 0.f, 0.f, 10.f, 10.f}).view({1, 5});
  at::Tensor det = at::tensor({0.f, 0.f, 10.f, 6.f, 0.9f, 0.f,  //
                               0.f, 0.f, 10.f, 8.f, 0.5f, 0.f})
                       .view({2, 6});
  at::Tensor c = match_detections(det, labels);
  for (int t = 0; t < 10; ++t) {
    INFO("threshold ", iou_thresholds()[t]);
    CHECK(c[0][t].item<bool>() == (t <= 2));            // 0.50, 0.55, 0.60: the confident box
    CHECK(c[1][t].item<bool>() == (t >= 3 && t <= 6));  // 0.65 to 0.80: only the second one qualifies
  }
  MetricsAccumulator acc;
  acc.add(det, labels);
  const auto m = acc.compute();
  CHECK(m.map50 == doctest::Approx(1.0));
  CHECK(m.map50_95 == doctest::Approx((3 * 1.0 + 4 * 0.5) / 10));
  // The order the detections come in does not matter, only their confidence.
  CHECK(match_detections(det.flip(0), labels).flip(0).equal(c));
}

TEST_CASE("a synthetic case with a known answer") {
  MetricsAccumulator acc;
  at::Tensor labels = at::tensor({0.f, 0.f, 0.f, 10.f, 10.f, 0.f, 20.f, 20.f, 30.f, 30.f}).view({2, 5});
  // one hit at high confidence, one false positive, the second object missed
  at::Tensor det = at::tensor({0.f, 0.f, 10.f, 10.f, 0.9f, 0.f, 50.f, 50.f, 60.f, 60.f, 0.8f, 0.f}).view({2, 6});
  acc.add(det, labels);
  const auto m = acc.compute();
  CHECK(m.classes == std::vector<int64_t>{0});
  CHECK(m.map50 == doctest::Approx(51.0 / 101));  // precision 1 up to recall 0.5
  CHECK(m.map50_95 == doctest::Approx(51.0 / 101));
  // P and R at the best-F1 point of a 1000-step confidence grid, as Ultralytics: just below 0.9 the precision
  // interpolates towards the false positive's 0.5.
  CHECK(m.mp == doctest::Approx(1.0).epsilon(1e-3));
  CHECK(m.mr == doctest::Approx(0.5));
}

TEST_CASE("coco128's ground truth scored against itself is 1.0, from the YOLO labels and from the COCO json") {
  namespace fs = std::filesystem;
  MetricsAccumulator yolo;
  for (const auto& f : fs::directory_iterator(std::string(REVKIT_ASSETS) + "/coco128/labels/train2017")) {
    auto p = read_yolo_labels(f.path().string(), 80);
    CHECK(p.problems.empty());
    at::Tensor labels = yolo_to_corners(p.rows, 640, 480);
    at::Tensor det = at::cat({labels.narrow(1, 1, 4), at::ones({labels.size(0), 1}), labels.narrow(1, 0, 1)}, 1);
    yolo.add(det, labels);
  }
  const auto a = yolo.compute();
  CHECK(a.classes.size() == 71);
  CHECK(a.map50 == doctest::Approx(1.0));
  CHECK(a.map50_95 == doctest::Approx(1.0));
  MetricsAccumulator coco;
  for (const auto& [id, labels] :
       read_coco_instances(std::string(REVKIT_ASSETS) + "/coco128/annotations/instances_train2017.json").labels)
    coco.add(at::cat({labels.narrow(1, 1, 4), at::ones({labels.size(0), 1}), labels.narrow(1, 0, 1)}, 1), labels);
  const auto b = coco.compute();
  CHECK(b.map50 == doctest::Approx(1.0));
  CHECK(b.map50_95 == doctest::Approx(1.0));
  CHECK(b.mp == doctest::Approx(1.0));
  CHECK(b.mr == doctest::Approx(1.0));
}

TEST_CASE("a class never predicted has precision and recall 0, as Ultralytics") {
  MetricsAccumulator acc;
  acc.add(at::zeros({0, 6}), at::tensor({1.f, 0.f, 0.f, 10.f, 10.f}).view({1, 5}));
  const auto m = acc.compute();
  CHECK(m.mp == 0.0);
  CHECK(m.mr == 0.0);
  CHECK(m.map50 == 0.0);
}

TEST_CASE("accumulators pooled through bytes give the metrics of one that saw every image") {
  at::manual_seed(9);
  MetricsAccumulator whole, a, b;
  for (int i = 0; i < 6; ++i) {
    at::Tensor xy = at::rand({4, 2}) * 50;
    at::Tensor labels = at::cat({at::randint(0, 3, {4, 1}).to(at::kFloat), xy, xy + 10}, 1);
    at::Tensor jitter = at::rand({4, 4}) * 4;
    at::Tensor dets = at::cat({labels.narrow(1, 1, 4) + jitter, at::rand({4, 1}), labels.narrow(1, 0, 1)}, 1);
    whole.add(dets, labels);
    (i % 2 ? a : b).add(dets, labels);
  }
  MetricsAccumulator pooled, empty;
  for (const auto* part : {&a, &b, &empty}) pooled.merge(part->serialize());
  CHECK(pooled.images() == 6);
  const auto x = whole.compute(), y = pooled.compute();
  CHECK(x.map50 > 0);
  CHECK(y.map50 == doctest::Approx(x.map50));
  CHECK(y.map50_95 == doctest::Approx(x.map50_95));
  CHECK(y.mp == doctest::Approx(x.mp));
  CHECK(y.mr == doctest::Approx(x.mr));
}

// The detections Ultralytics YOLOv5 v7.0's val.py made with its own weights (yolov5n trained by its train.py on
// coco128, tests/fixtures/ultralytics), in each image's pixels with the labels it matched them to. Scored by
// revkit's Ultralytics rule they give val.py's numbers exactly; by its COCO rule, what pycocotools gave on the same
// detections (written by val.py's save_one_json, scored against coco128's instances json: the same boxes as the
// YOLO labels but for their rounding, and no crowd labels among them).
TEST_CASE("Ultralytics' own detections scored by revkit give val.py's mAP and pycocotools'") {
  std::ifstream coco_file(std::string(REVKIT_TEST_FIXTURES) + "/ultralytics/pycocotools_no_crowd.json");
  const nlohmann::json pycocotools = nlohmann::json::parse(coco_file);
  for (const std::string variant : {"square", "rect"}) {
    INFO(variant);
    std::ifstream in(std::string(REVKIT_TEST_FIXTURES) + "/ultralytics/detections_" + variant + ".json");
    const nlohmann::json j = nlohmann::json::parse(in);
    MetricsAccumulator ultralytics(ApRule::Ultralytics), coco(ApRule::Coco);
    for (const auto& stem : j["image_order"]) {
      const auto& image = j["images"][stem.get<std::string>()];
      auto rows = [](const nlohmann::json& list, int64_t width) {
        std::vector<float> flat;
        for (const auto& row : list)
          for (const auto& v : row) flat.push_back(v.get<float>());  // float32, as val.py holds them
        return at::tensor(flat, at::kFloat).view({static_cast<int64_t>(list.size()), width});
      };
      ultralytics.add(rows(image["detections"], 6), rows(image["labels"], 5));
      coco.add(rows(image["detections"], 6), rows(image["labels"], 5));
    }
    const auto& reference = j["metrics"];
    CHECK(ultralytics.images() == 128);
    const DetectionMetrics u = ultralytics.compute();
    CHECK(std::abs(u.map50 - reference["map50"].get<double>()) < 1e-9);
    CHECK(std::abs(u.map50_95 - reference["map50_95"].get<double>()) < 1e-9);
    CHECK(std::abs(u.mp - reference["mp"].get<double>()) < 1e-9);
    CHECK(std::abs(u.mr - reference["mr"].get<double>()) < 1e-9);
    // pycocotools against the same 929 labels (its crowd boxes removed): equal but for the labels' rounding.
    const DetectionMetrics c = coco.compute();
    const auto& same_labels = pycocotools[variant]["no_crowd"];
    CHECK(std::abs(c.map50 - same_labels["ap50"].get<double>()) < 2e-4);
    CHECK(std::abs(c.map50_95 - same_labels["ap50_95"].get<double>()) < 2e-5);
    // With the crowd boxes (detections on them are ignored, not false): within the 0.002 of the rule.
    const auto& with_crowd = pycocotools[variant]["with_crowd"];
    CHECK(std::abs(c.map50 - with_crowd["ap50"].get<double>()) < 0.002);
    CHECK(std::abs(c.map50_95 - with_crowd["ap50_95"].get<double>()) < 0.002);
  }
}

TEST_CASE("COCO's matching differs from Ultralytics' where a detection's best label is already taken") {
  // Two overlapping labels of one class. The confident detection is label 0; the second is closer to label 0
  // (IoU 95/105) than to label 1 (IoU 85/115).
  const at::Tensor labels = at::tensor({0.f, 0.f, 0.f, 10.f, 10.f, 0.f, 2.f, 0.f, 12.f, 10.f}).view({2, 5});
  const at::Tensor dets = at::tensor({0.f, 0.f, 10.f, 10.f, 0.9f, 0.f, 0.5f, 0.f, 10.5f, 10.f, 0.8f, 0.f}).view({2, 6});
  // COCO: the first takes label 0, the second the best unmatched label, label 1 (IoU 0.74 >= 0.5).
  const at::Tensor coco = match_detections_coco(dets, labels);
  CHECK(coco[0][0].item<bool>());
  CHECK(coco[1][0].item<bool>());
  // Ultralytics: both detections choose label 0; the less confident one is a false positive.
  const at::Tensor yolo = match_detections(dets, labels);
  CHECK(yolo[0][0].item<bool>());
  CHECK(!yolo[1][0].item<bool>());
  CHECK_THROWS_WITH_AS(parse_ap_rule("voc"),
                       "--metrics must be coco, yolov5 (or ultralytics) or ultralytics8, got 'voc'", InputError);
  CHECK(parse_ap_rule("yolov5") == ApRule::Ultralytics);
  CHECK(parse_ap_rule("ultralytics8") == ApRule::Ultralytics8);
}

// tests/fixtures/yolov8/detections_square.json: Ultralytics 8.4's validator's own detections (yolov8n, coco128 at
// 256, square letterboxes) and labels per image, with the numbers it printed.
TEST_CASE("Ultralytics 8's own detections scored by revkit's Ultralytics8 rule give yolo val's numbers") {
  std::ifstream in(std::string(REVKIT_TEST_FIXTURES) + "/yolov8/detections_square.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  MetricsAccumulator greedy(ApRule::Ultralytics8), yolov5(ApRule::Ultralytics);
  for (auto it = j["images"].begin(); it != j["images"].end(); ++it) {
    auto rows = [](const nlohmann::json& list, int64_t width) {
      std::vector<float> flat;
      for (const auto& row : list)
        for (const auto& v : row) flat.push_back(v.get<float>());
      return at::tensor(flat, at::kFloat).view({static_cast<int64_t>(list.size()), width});
    };
    greedy.add(rows(it.value()["detections"], 6), rows(it.value()["labels"], 5));
    yolov5.add(rows(it.value()["detections"], 6), rows(it.value()["labels"], 5));
  }
  const auto& reference = j["val_metrics"];
  const DetectionMetrics m = greedy.compute();
  MESSAGE("revkit " << m.mp << " " << m.mr << " " << m.map50 << " " << m.map50_95);
  CHECK(greedy.images() == 128);
  CHECK(std::abs(m.map50 - reference["map50"].get<double>()) < 1e-9);
  CHECK(std::abs(m.map50_95 - reference["map50-95"].get<double>()) < 1e-9);
  CHECK(std::abs(m.mp - reference["mp"].get<double>()) < 1e-9);
  CHECK(std::abs(m.mr - reference["mr"].get<double>()) < 1e-9);
  // YOLOv5's rule on the same detections scores higher (its curve falls linearly after the last recall).
  CHECK(yolov5.compute().map50_95 > m.map50_95);
}
