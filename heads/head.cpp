#include "heads/head.h"

#include <ATen/ATen.h>

#include <tuple>

#include "heads/boxes.h"

namespace revkit {

std::vector<at::Tensor> DetectionHead::forward(const std::vector<at::Tensor>& features) {
  std::vector<at::Tensor> maps = raw(features);
  if (is_training()) return maps;
  return {decode(maps)};
}

at::Tensor suppress_candidates(const at::Tensor& xywh, const at::Tensor& scores, double conf, double iou,
                               int64_t max_det, bool multi_label) {
  constexpr int64_t kMaxCandidates = 30000;  // as Ultralytics: the best 30000 candidates go into NMS
  at::Tensor rows, score, cls;               // a candidate per (box, class) kept
  if (multi_label) {
    const at::Tensor hits = (scores > conf).nonzero();
    rows = hits.select(1, 0);
    cls = hits.select(1, 1);
    score = scores.index({rows, cls});
  } else {
    std::tie(score, cls) = scores.max(1);
    rows = (score > conf).nonzero().select(1, 0);
    score = score.index({rows});
    cls = cls.index({rows});
  }
  at::Tensor order = score.argsort(0, /*descending=*/true);
  if (order.size(0) > kMaxCandidates) order = order.narrow(0, 0, kMaxCandidates);
  rows = rows.index({order});
  const at::Tensor xy = xywh.narrow(1, 0, 2).index({rows}), half = xywh.narrow(1, 2, 2).index({rows}) / 2;
  const at::Tensor boxes = at::cat({xy - half, xy + half}, 1).contiguous();
  score = score.index({order}).contiguous();
  cls = cls.index({order}).contiguous();
  const at::Tensor idx = class_aware_nms(boxes, cls, iou, max_det);
  return at::cat({boxes.index({idx}), score.index({idx}).unsqueeze(1), cls.index({idx}).unsqueeze(1).to(at::kFloat)},
                 1);
}

}  // namespace revkit
