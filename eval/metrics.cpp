#include "eval/metrics.h"

#include <ATen/ATen.h>

#include <cstring>

#include <algorithm>
#include <map>
#include <tuple>

#include "core/error.h"
#include "heads/boxes.h"

namespace revkit {

const std::vector<double>& iou_thresholds() {
  static const std::vector<double> t = [] {
    std::vector<double> v;
    for (int i = 0; i < 10; ++i) v.push_back(0.5 + 0.05 * i);
    return v;
  }();
  return t;
}

namespace {

// What both matching rules start from: detections in confidence order (stable, so ties keep NMS's order), and the
// IoU of every label with every detection of its class ([m, n]; -1 across classes).
struct MatchInputs {
  std::vector<int64_t> by_confidence;
  at::Tensor iou;
};

MatchInputs match_inputs(const at::Tensor& detections, const at::Tensor& labels) {
  at::Tensor det = detections.to(at::kCPU, at::kFloat), lab = labels.to(at::kCPU, at::kFloat);
  const at::Tensor order =
      std::get<1>(det.select(1, 4).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();
  MatchInputs in;
  in.by_confidence.assign(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + order.numel());
  // float32 IoUs as Ultralytics and pycocotools compare them, held as double for the threshold comparisons.
  const at::Tensor same_class = lab.select(1, 0).unsqueeze(1) == det.select(1, 5).unsqueeze(0);
  in.iou = box_iou(lab.narrow(1, 1, 4), det.narrow(1, 0, 4)).to(at::kDouble).masked_fill(~same_class, -1.0);
  return in;
}

// The `limit` most confident detections of each class, most confident first.
at::Tensor most_confident_per_class(const at::Tensor& detections, int64_t limit) {
  if (detections.size(0) <= limit) return detections;  // NMS keeps 300 at most: usually nothing to drop
  const at::Tensor order = std::get<1>(detections.select(1, 4).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted = detections.index({order});
  const at::Tensor cls = sorted.select(1, 5).to(at::kCPU, at::kLong).contiguous();
  std::map<int64_t, int64_t> seen;
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < cls.size(0); ++i)
    if (++seen[cls.data_ptr<int64_t>()[i]] <= limit) keep.push_back(i);
  return static_cast<int64_t>(keep.size()) == sorted.size(0) ? sorted : sorted.index({at::tensor(keep)});
}

}  // namespace

at::Tensor match_detections(const at::Tensor& detections, const at::Tensor& labels) {
  const int64_t n = detections.size(0), m = labels.size(0);
  at::Tensor correct = at::zeros({n, 10}, at::kBool);
  if (n == 0 || m == 0) return correct;
  const MatchInputs in = match_inputs(detections, labels);
  auto iou = in.iou.accessor<double, 2>();
  auto correct_a = correct.accessor<bool, 2>();
  std::vector<int64_t> best_label(n);
  std::vector<char> label_taken(m);
  for (size_t t = 0; t < iou_thresholds().size(); ++t) {
    const double threshold = iou_thresholds()[t];
    // Each detection's best label above the threshold (the lowest index among equal IoUs)...
    for (int64_t d = 0; d < n; ++d) {
      best_label[d] = -1;
      for (int64_t l = 0; l < m; ++l)
        if (iou[l][d] >= threshold && (best_label[d] < 0 || iou[l][d] > iou[best_label[d]][d])) best_label[d] = l;
    }
    // ...and each label to the most confident detection that chose it; the others are false positives.
    std::fill(label_taken.begin(), label_taken.end(), 0);
    for (const int64_t d : in.by_confidence) {
      const int64_t l = best_label[d];
      if (l < 0 || label_taken[l]) continue;
      label_taken[l] = 1;
      correct_a[d][t] = true;
    }
  }
  return correct;
}

namespace {

// In confidence order, each detection takes the unmatched label of its class with the highest IoU at or above
// the threshold; among equal IoUs the last (pycocotools) or the first (Ultralytics 8) label.
at::Tensor match_greedily(const at::Tensor& detections, const at::Tensor& labels, bool last_of_equals) {
  const int64_t n = detections.size(0), m = labels.size(0);
  at::Tensor correct = at::zeros({n, 10}, at::kBool);
  if (n == 0 || m == 0) return correct;
  const MatchInputs in = match_inputs(detections, labels);
  auto iou = in.iou.accessor<double, 2>();
  auto correct_a = correct.accessor<bool, 2>();
  std::vector<char> label_taken(m);
  for (size_t t = 0; t < iou_thresholds().size(); ++t) {
    std::fill(label_taken.begin(), label_taken.end(), 0);
    for (const int64_t d : in.by_confidence) {
      double best = std::min(iou_thresholds()[t], 1 - 1e-10);
      int64_t taken = -1;
      for (int64_t l = 0; l < m; ++l) {
        if (label_taken[l] || iou[l][d] < best || (!last_of_equals && taken >= 0 && iou[l][d] == best)) continue;
        best = iou[l][d];
        taken = l;
      }
      if (taken < 0) continue;
      label_taken[taken] = 1;
      correct_a[d][t] = true;
    }
  }
  return correct;
}

}  // namespace

at::Tensor match_detections_coco(const at::Tensor& detections, const at::Tensor& labels) {
  return match_greedily(detections, labels, /*last_of_equals=*/true);
}

at::Tensor match_detections_greedy(const at::Tensor& detections, const at::Tensor& labels) {
  return match_greedily(detections, labels, /*last_of_equals=*/false);
}

ApRule parse_ap_rule(const std::string& name) {
  if (name == "coco") return ApRule::Coco;
  if (name == "ultralytics" || name == "yolov5") return ApRule::Ultralytics;
  if (name == "ultralytics8") return ApRule::Ultralytics8;
  throw InputError("--metrics must be coco, yolov5 (or ultralytics) or ultralytics8, got '" + name + "'");
}

double average_precision_101(const std::vector<double>& recall, const std::vector<double>& precision) {
  const size_t n = recall.size();
  if (n == 0) return 0.0;
  std::vector<double> p = precision;
  for (size_t i = n - 1; i > 0; --i) p[i - 1] = std::max(p[i - 1], p[i]);  // monotone from the right
  double sum = 0.0;
  for (int k = 0; k <= 100; ++k) {
    const double r = k * 0.01;  // np.linspace(0, 1, 101), as pycocotools' recThrs
    const auto it = std::lower_bound(recall.begin(), recall.end(), r);
    if (it != recall.end()) sum += p[static_cast<size_t>(it - recall.begin())];
  }
  return sum / 101.0;
}

double average_precision_interp(const std::vector<double>& recall, const std::vector<double>& precision,
                                bool zero_after_last_recall) {
  if (recall.empty()) return 0.0;  // a class never predicted: YOLOv5 leaves its AP at 0
  std::vector<double> r = {0.0}, p = {1.0};
  r.insert(r.end(), recall.begin(), recall.end());
  p.insert(p.end(), precision.begin(), precision.end());
  if (zero_after_last_recall) {
    r.push_back(recall.back());
    p.push_back(0.0);
  }
  r.push_back(1.0);
  p.push_back(0.0);
  for (size_t i = p.size() - 1; i > 0; --i) p[i - 1] = std::max(p[i - 1], p[i]);  // the envelope
  // numpy.interp: the last point at or below x, linearly towards the next one.
  auto interp = [&](double x) {
    const auto upper = std::upper_bound(r.begin(), r.end(), x);
    if (upper == r.end()) return p.back();
    const size_t j = static_cast<size_t>(upper - r.begin()) - 1;
    if (r[j] == x) return p[j];
    return p[j] + (p[j + 1] - p[j]) / (r[j + 1] - r[j]) * (x - r[j]);
  };
  double area = 0.0, previous = interp(0.0);
  for (int k = 1; k <= 100; ++k) {
    const double y = interp(k / 100.0);
    area += (previous + y) / 2 * 0.01;
    previous = y;
  }
  return area;
}

void MetricsAccumulator::add(const at::Tensor& detections_in, const at::Tensor& labels) {
  ++images_;
  // COCOeval's maxDets: only the 100 most confident detections of each class in an image count.
  const at::Tensor detections = rule_ == ApRule::Coco ? most_confident_per_class(detections_in, 100) : detections_in;
  correct_.push_back(rule_ == ApRule::Coco           ? match_detections_coco(detections, labels)
                     : rule_ == ApRule::Ultralytics8 ? match_detections_greedy(detections, labels)
                                                     : match_detections(detections, labels));
  conf_.push_back(detections.select(1, 4).to(at::kCPU, at::kDouble));
  pred_cls_.push_back(detections.select(1, 5).to(at::kCPU, at::kLong));
  target_cls_.push_back(labels.select(1, 0).to(at::kCPU, at::kLong));
}

std::string MetricsAccumulator::serialize() const {
  auto joined = [](const std::vector<at::Tensor>& parts, at::ScalarType type, std::vector<int64_t> empty_shape) {
    return parts.empty() ? at::zeros(empty_shape, type) : at::cat(parts).to(type).contiguous();
  };
  const at::Tensor correct = joined(correct_, at::kBool, {0, 10}), conf = joined(conf_, at::kDouble, {0}),
                   pred = joined(pred_cls_, at::kLong, {0}), target = joined(target_cls_, at::kLong, {0});
  const int64_t header[3] = {images_, conf.size(0), target.size(0)};
  std::string out(reinterpret_cast<const char*>(header), sizeof(header));
  for (const at::Tensor* t : {&correct, &conf, &pred, &target})
    if (t->nbytes() > 0) out.append(static_cast<const char*>(t->data_ptr()), t->nbytes());
  return out;
}

void MetricsAccumulator::merge(const std::string& bytes) {
  int64_t header[3];
  TORCH_CHECK(bytes.size() >= sizeof(header), "MetricsAccumulator::merge: truncated");
  std::memcpy(header, bytes.data(), sizeof(header));
  const int64_t n = header[1], m = header[2];
  size_t offset = sizeof(header);
  auto take = [&](std::vector<int64_t> shape, at::ScalarType type) {
    at::Tensor t = at::empty(shape, type);
    TORCH_CHECK(offset + t.nbytes() <= bytes.size(), "MetricsAccumulator::merge: truncated");
    // An empty tensor's data pointer is null, and memcpy's may not be even for zero bytes (UBSan).
    if (t.nbytes() > 0) std::memcpy(t.data_ptr(), bytes.data() + offset, t.nbytes());
    offset += t.nbytes();
    return t;
  };
  correct_.push_back(take({n, 10}, at::kBool));
  conf_.push_back(take({n}, at::kDouble));
  pred_cls_.push_back(take({n}, at::kLong));
  target_cls_.push_back(take({m}, at::kLong));
  images_ += header[0];
}

DetectionMetrics MetricsAccumulator::compute() const {
  const ApRule rule = rule_;
  DetectionMetrics out;
  if (images_ == 0) return out;
  at::Tensor correct = at::cat(correct_), conf = at::cat(conf_), pred_cls = at::cat(pred_cls_),
             target_cls = at::cat(target_cls_);
  // By confidence over all images, equal ones in image order (COCOeval's mergesort).
  at::Tensor order = std::get<1>(conf.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  correct = correct.index({order});
  conf = conf.index({order});
  pred_cls = pred_cls.index({order});

  std::map<int64_t, int64_t> labels_of;
  auto t = target_cls.accessor<int64_t, 1>();
  for (int64_t i = 0; i < target_cls.size(0); ++i) ++labels_of[t[i]];
  auto corr = correct.accessor<bool, 2>();
  auto cls = pred_cls.accessor<int64_t, 1>();
  auto cf = conf.accessor<double, 1>();

  // Precision and recall against confidence, on a 1000-point grid, for the best mean-F1 operating point.
  constexpr int kGrid = 1000;
  std::vector<std::vector<double>> p_at(labels_of.size(), std::vector<double>(kGrid, 0.0)), r_at = p_at;
  size_t ci = 0;
  for (const auto& [c, n_labels] : labels_of) {
    std::vector<double> confs;
    std::vector<std::vector<double>> rec_t(10), prec_t(10);
    std::vector<int64_t> tp(10, 0), fp(10, 0);
    for (int64_t i = 0; i < correct.size(0); ++i) {
      if (cls[i] != c) continue;
      confs.push_back(cf[i]);
      for (int th = 0; th < 10; ++th) {
        (corr[i][th] ? tp[th] : fp[th]) += 1;
        rec_t[th].push_back(static_cast<double>(tp[th]) / static_cast<double>(n_labels));
        prec_t[th].push_back(static_cast<double>(tp[th]) / static_cast<double>(tp[th] + fp[th]));
      }
    }
    double ap_sum = 0.0;
    for (int th = 0; th < 10; ++th) {
      const double ap = rule == ApRule::Coco
                            ? average_precision_101(rec_t[th], prec_t[th])
                            : average_precision_interp(rec_t[th], prec_t[th], rule == ApRule::Ultralytics8);
      ap_sum += ap;
      if (th == 0) out.ap50.push_back(ap);
    }
    out.ap50_95.push_back(ap_sum / 10.0);
    // At grid confidence x: the curves linearly interpolated over the detections' confidences, as Ultralytics
    // does with np.interp; above the highest confidence recall is 0 and precision 1.
    // Walked from high confidence down, so the segment [k - 1, k] holding x only moves forward: one pass.
    size_t k = 1;
    for (int g = kGrid - 1; g >= 0; --g) {
      const double x = static_cast<double>(g) / (kGrid - 1);
      if (!confs.empty() && x <= confs.front() && x > confs.back())
        while (confs[k] > x) ++k;  // the first k with confs[k] <= x < confs[k - 1]
      auto interp = [&](const std::vector<double>& y, double above) {
        if (confs.empty()) return 0.0;  // a class never predicted: precision and recall 0, as Ultralytics
        if (x > confs.front()) return above;
        if (x <= confs.back()) return y.back();
        const double x0 = confs[k - 1], x1 = confs[k];
        return x0 == x1 ? y[k - 1] : y[k - 1] + (y[k] - y[k - 1]) * (x0 - x) / (x0 - x1);
      };
      r_at[ci][g] = interp(rec_t[0], 0.0);
      p_at[ci][g] = interp(prec_t[0], 1.0);
    }
    out.classes.push_back(c);
    out.labels_per_class.push_back(n_labels);
    ++ci;
  }
  std::vector<double> mean_f1(kGrid, 0.0);
  for (int g = 0; g < kGrid; ++g) {
    for (size_t k = 0; k < labels_of.size(); ++k) {
      const double p = p_at[k][g], r = r_at[k][g];
      mean_f1[g] += (p + r > 0 ? 2 * p * r / (p + r) : 0.0) / static_cast<double>(labels_of.size());
    }
  }
  if (rule != ApRule::Coco) {
    // val.py's smooth(f1, 0.1): a 101-wide box filter, the ends padded with the end values.
    constexpr int kHalf = 50;
    std::vector<double> smoothed(kGrid, 0.0);
    for (int g = 0; g < kGrid; ++g) {
      for (int d = -kHalf; d <= kHalf; ++d) smoothed[g] += mean_f1[std::clamp(g + d, 0, kGrid - 1)];
      smoothed[g] /= 2 * kHalf + 1;
    }
    mean_f1 = std::move(smoothed);
  }
  int best = 0;
  for (int g = 1; g < kGrid; ++g)
    if (mean_f1[g] > mean_f1[best] + 1e-12) best = g;
  for (size_t k = 0; k < labels_of.size(); ++k) {
    out.precision.push_back(p_at[k][best]);
    out.recall.push_back(r_at[k][best]);
  }
  const double nc = static_cast<double>(labels_of.size());
  for (size_t k = 0; k < labels_of.size(); ++k) {
    out.mp += out.precision[k] / nc;
    out.mr += out.recall[k] / nc;
    out.map50 += out.ap50[k] / nc;
    out.map50_95 += out.ap50_95[k] / nc;
  }
  return out;
}

}  // namespace revkit
