#pragma once
// Detection metrics as COCO and Ultralytics compute them: detections matched to ground truth per IoU threshold
// (0.50:0.05:0.95) in confidence order, average precision by COCO's 101-point rule or YOLOv5's interpolated
// curve, and precision and recall at the confidence that maximises the mean F1 over classes.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace revkit {

// The ten IoU thresholds 0.50, 0.55, ..., 0.95.
const std::vector<double>& iou_thresholds();

// For one image: detections [n, 6] (x1, y1, x2, y2, conf, class) and labels [m, 5]
// (class, x1, y1, x2, y2). Returns [n, 10] booleans: detection i is a true positive at threshold t. As
// Ultralytics' process_batch matches (and, but for the fallback to a second-best label, COCO): each detection
// takes its best-IoU label of its class above the threshold, and each label goes to the most confident of the
// detections that took it. Matching by highest IoU instead would make the confident box a false positive and
// halve the AP of a weak model.
at::Tensor match_detections(const at::Tensor& detections, const at::Tensor& labels);
// The same as pycocotools' evaluateImg matches (area 'all', no crowd labels): in confidence order, each detection
// takes the unmatched label of its class with the highest IoU at or above the threshold (the last of equals).
at::Tensor match_detections_coco(const at::Tensor& detections, const at::Tensor& labels);
// As Ultralytics 8.4's match_predictions: the same greedy matching in confidence order, the first of equals.
at::Tensor match_detections_greedy(const at::Tensor& detections, const at::Tensor& labels);

// Average precision of one precision/recall curve (detections sorted by confidence, cumulative), COCO style:
// precision made monotone, sampled at recall 0, 0.01, ..., 1 (the first point at or beyond each), averaged.
double average_precision_101(const std::vector<double>& recall, const std::vector<double>& precision);
// The same curve as YOLOv5's compute_ap integrates it: the envelope with (0, 1) before and (1, 0) after the
// curve, linearly interpolated at recall 0, 0.01, ..., 1 and integrated by the trapezoid rule. Above the last
// recall the precision falls linearly to 0 instead of being 0, so a model of low recall scores higher than COCO's.
// With `zero_after_last_recall` (Ultralytics 8.4's compute_ap) the curve gets (last recall, 0) before (1, 0)
// instead: precision is 0 beyond the last recall.
double average_precision_interp(const std::vector<double>& recall, const std::vector<double>& precision,
                                bool zero_after_last_recall = false);

// How AP is integrated and where P and R are read.
enum class ApRule {
  // pycocotools' COCOeval: COCO's matching, at most 100 detections per image and class, the 101-point average;
  // P and R at the best mean F1 of the 1000-point confidence grid.
  Coco,
  // YOLOv5 v7.0's val.py: process_batch's matching, compute_ap, P and R at the best mean F1 after its smoothing.
  Ultralytics,
  // Ultralytics 8.4's DetectionValidator: greedy matching in confidence order (match_detections_greedy), then
  // as val.py: compute_ap, P and R at the smoothed best mean F1.
  Ultralytics8,
};
// "coco", "yolov5" (or "ultralytics") or "ultralytics8"; InputError for anything else.
ApRule parse_ap_rule(const std::string& name);

struct DetectionMetrics {
  std::vector<int64_t> classes;                          // classes with ground truth, ascending
  std::vector<double> precision, recall, ap50, ap50_95;  // per class, aligned with `classes`
  std::vector<int64_t> labels_per_class;
  double mp = 0, mr = 0, map50 = 0, map50_95 = 0;  // means over classes
};

// Accumulates images and computes the metrics.
class MetricsAccumulator {
 public:
  explicit MetricsAccumulator(ApRule rule = ApRule::Coco) : rule_(rule) {}
  void add(const at::Tensor& detections, const at::Tensor& labels);
  DetectionMetrics compute() const;
  ApRule rule() const { return rule_; }
  int64_t images() const { return images_; }
  // The accumulated matches as bytes, and adding another accumulator's bytes: how the ranks of a data-parallel
  // validation pool what they saw.
  std::string serialize() const;
  void merge(const std::string& bytes);

 private:
  ApRule rule_;
  std::vector<at::Tensor> correct_, conf_, pred_cls_, target_cls_;
  int64_t images_ = 0;
};

}  // namespace revkit
