#include "heads/boxes.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace revkit {

at::Tensor box_iou(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor area_a = (a.select(1, 2) - a.select(1, 0)) * (a.select(1, 3) - a.select(1, 1));
  at::Tensor area_b = (b.select(1, 2) - b.select(1, 0)) * (b.select(1, 3) - b.select(1, 1));
  at::Tensor lt = at::max(a.narrow(1, 0, 2).unsqueeze(1), b.narrow(1, 0, 2).unsqueeze(0));
  at::Tensor rb = at::min(a.narrow(1, 2, 2).unsqueeze(1), b.narrow(1, 2, 2).unsqueeze(0));
  at::Tensor wh = (rb - lt).clamp_min(0);
  at::Tensor inter = wh.select(2, 0) * wh.select(2, 1);
  return inter / (area_a.unsqueeze(1) + area_b.unsqueeze(0) - inter + 1e-9);
}

namespace {

// CIoU from both boxes' corners and sides (the sides as each convention computes them).
at::Tensor ciou_of_corners(const at::Tensor& b1x1, const at::Tensor& b1y1, const at::Tensor& b1x2,
                           const at::Tensor& b1y2, const at::Tensor& w1, const at::Tensor& h1, const at::Tensor& b2x1,
                           const at::Tensor& b2y1, const at::Tensor& b2x2, const at::Tensor& b2y2, const at::Tensor& w2,
                           const at::Tensor& h2, double eps) {
  at::Tensor inter = (at::min(b1x2, b2x2) - at::max(b1x1, b2x1)).clamp_min(0) *
                     (at::min(b1y2, b2y2) - at::max(b1y1, b2y1)).clamp_min(0);
  at::Tensor uni = w1 * h1 + w2 * h2 - inter + eps;
  at::Tensor iou = inter / uni;
  at::Tensor cw = at::max(b1x2, b2x2) - at::min(b1x1, b2x1);
  at::Tensor ch = at::max(b1y2, b2y2) - at::min(b1y1, b2y1);
  at::Tensor c2 = cw.pow(2) + ch.pow(2) + eps;
  at::Tensor rho2 = ((b2x1 + b2x2 - b1x1 - b1x2).pow(2) + (b2y1 + b2y2 - b1y1 - b1y2).pow(2)) / 4;
  at::Tensor v = (4 / (M_PI * M_PI)) * (at::atan(w2 / h2) - at::atan(w1 / h1)).pow(2);
  at::Tensor alpha;
  {
    at::NoGradGuard no_grad;
    alpha = v / (v - iou + (1 + eps));
  }
  return iou - (rho2 / c2 + v * alpha);
}

at::Tensor part(const at::Tensor& b, int64_t i) { return b.select(-1, i); }

}  // namespace

at::Tensor bbox_ciou(const at::Tensor& box1, const at::Tensor& box2, double eps) {
  at::Tensor x1 = part(box1, 0), y1 = part(box1, 1), w1 = part(box1, 2), h1 = part(box1, 3);
  at::Tensor x2 = part(box2, 0), y2 = part(box2, 1), w2 = part(box2, 2), h2 = part(box2, 3);
  return ciou_of_corners(x1 - w1 / 2, y1 - h1 / 2, x1 + w1 / 2, y1 + h1 / 2, w1, h1, x2 - w2 / 2, y2 - h2 / 2,
                         x2 + w2 / 2, y2 + h2 / 2, w2, h2, eps);
}

at::Tensor bbox_ciou_xyxy(const at::Tensor& box1, const at::Tensor& box2, double eps) {
  at::Tensor x1 = part(box1, 0), y1 = part(box1, 1), x2 = part(box1, 2), y2 = part(box1, 3);
  at::Tensor u1 = part(box2, 0), v1 = part(box2, 1), u2 = part(box2, 2), v2 = part(box2, 3);
  return ciou_of_corners(x1, y1, x2, y2, x2 - x1, y2 - y1 + eps, u1, v1, u2, v2, u2 - u1, v2 - v1 + eps, eps);
}

at::Tensor class_aware_nms(const at::Tensor& boxes_in, const at::Tensor& classes_in, double iou_threshold,
                           int64_t max_det) {
  const at::Tensor boxes = boxes_in.to(at::kFloat).contiguous();
  const at::Tensor cls = classes_in.to(at::kLong).contiguous();
  const int64_t n = boxes.size(0);
  const float* bx = boxes.data_ptr<float>();
  const int64_t* c = cls.data_ptr<int64_t>();
  std::vector<char> removed(n, 0);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n && static_cast<int64_t>(kept.size()) < max_det; ++i) {
    if (removed[i]) continue;
    kept.push_back(i);
    const float* a = bx + 4 * i;
    const float area_a = (a[2] - a[0]) * (a[3] - a[1]);
    for (int64_t j = i + 1; j < n; ++j) {
      if (removed[j] || c[j] != c[i]) continue;
      const float* o = bx + 4 * j;
      const float w = std::min(a[2], o[2]) - std::max(a[0], o[0]), h = std::min(a[3], o[3]) - std::max(a[1], o[1]);
      if (w <= 0 || h <= 0) continue;
      const float inter = w * h;
      if (inter / (area_a + (o[2] - o[0]) * (o[3] - o[1]) - inter + 1e-9f) > iou_threshold) removed[j] = 1;
    }
  }
  return at::tensor(kept, at::kLong);
}

}  // namespace revkit
