#pragma once
// Box geometry shared by the detection heads, their losses and validation: IoU, CIoU and greedy NMS.
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace revkit {

// Pairwise IoU of boxes [n, 4] and [m, 4] in (x1, y1, x2, y2): [n, m].
at::Tensor box_iou(const at::Tensor& a, const at::Tensor& b);

// CIoU of boxes in (x, y, w, h), element by element: IoU - (centre distance^2 / enclosing diagonal^2 + v alpha).
at::Tensor bbox_ciou(const at::Tensor& box1, const at::Tensor& box2, double eps = 1e-7);
// The same for boxes in (x1, y1, x2, y2), as Ultralytics 8 computes it: each height gains eps.
at::Tensor bbox_ciou_xyxy(const at::Tensor& box1, const at::Tensor& box2, double eps = 1e-7);

// Greedy class-aware NMS over boxes [n, 4] (x1, y1, x2, y2) already sorted best first, with classes [n]: a box
// suppresses later boxes of its own class that overlap it by more than `iou_threshold`. Returns the indices kept
// (at most `max_det`), in order. O(n * kept) time, O(n) memory.
at::Tensor class_aware_nms(const at::Tensor& boxes, const at::Tensor& classes, double iou_threshold, int64_t max_det);

}  // namespace revkit
