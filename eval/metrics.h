#pragma once
// Detection metrics as COCO and Ultralytics compute them: detections matched to ground truth per IoU threshold
// (0.50:0.05:0.95), average precision with COCO's 101-point interpolation, and precision and recall at the
// confidence that maximises the mean F1 over classes.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace revkit {

// The ten IoU thresholds 0.50, 0.55, ..., 0.95.
const std::vector<double>& iou_thresholds();

// For one image: detections [n, 6] (x1, y1, x2, y2, conf, class) and labels [m, 5] (class, x1, y1, x2, y2).
// Returns [n, 10] booleans: detection i is a true positive at threshold t. Each label matches at most one
// detection per threshold, highest IoU first, same class only (Ultralytics' process_batch).
at::Tensor match_detections(const at::Tensor& detections, const at::Tensor& labels);

// Average precision of one precision/recall curve (detections sorted by confidence, cumulative), COCO style:
// precision made monotone, sampled at recall 0, 0.01, ..., 1 (the first point at or beyond each), averaged.
double average_precision_101(const std::vector<double>& recall, const std::vector<double>& precision);

struct DetectionMetrics {
  std::vector<int64_t> classes;                          // classes with ground truth, ascending
  std::vector<double> precision, recall, ap50, ap50_95;  // per class, aligned with `classes`
  std::vector<int64_t> labels_per_class;
  double mp = 0, mr = 0, map50 = 0, map50_95 = 0;  // means over classes
};

// Accumulates images and computes the metrics.
class MetricsAccumulator {
 public:
  void add(const at::Tensor& detections, const at::Tensor& labels);
  DetectionMetrics compute() const;
  int64_t images() const { return images_; }
  // The accumulated matches as bytes, and adding another accumulator's bytes: how the ranks of a data-parallel
  // validation pool what they saw.
  std::string serialize() const;
  void merge(const std::string& bytes);

 private:
  std::vector<at::Tensor> correct_, conf_, pred_cls_, target_cls_;
  int64_t images_ = 0;
};

}  // namespace revkit
