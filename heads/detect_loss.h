#pragma once
// The YOLOv5 loss, as Ultralytics computes it: each target is assigned to the anchors whose shape ratio is
// within anchor_t on every level, in its own grid cell and the two neighbouring cells nearest its centre; CIoU
// box loss, BCE objectness against the (detached, clamped) IoU, BCE classes; levels weighted [4.0, 1.0, 0.4];
// gains box, obj, cls; the sum times the batch size.
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

namespace revkit {

class DetectImpl;

struct DetectLossOptions {
  double box = 0.05, obj = 1.0, cls = 0.5;  // hyp.scratch-low gains, before the scaling below
  double anchor_t = 4.0;
  // Data-parallel runs: the loss of the global batch split over ranks. `world_size` ranks with equal batches;
  // `sum_over_ranks` sums the per-level target counts over ranks (the box and class terms are means over the
  // global batch's targets). Each rank's loss is then its share of the global loss: summing the ranks' gradients
  // gives exactly the gradient of one process with the whole batch.
  int64_t world_size = 1;
  std::function<std::vector<double>(const std::vector<double>&)> sum_over_ranks;
  // Applies Ultralytics' train-time scaling: box x 3/nl, cls x nc/80 x 3/nl, obj x (imgsz/640)^2 x 3/nl.
  static DetectLossOptions scaled(int64_t num_levels, int64_t num_classes, int64_t imgsz);
};

struct DetectLoss {
  at::Tensor total;                  // scalar: (box + obj + cls) * (global) batch size, for backward
  double box = 0, obj = 0, cls = 0;  // the three parts, before the batch-size factor
};

// raw: the head's training maps, [batch, na, ny, nx, nc + 5] per level. targets: [n, 6] rows of
// (image index, class, x, y, w, h) with coordinates normalised to [0, 1].
DetectLoss detect_loss(const DetectImpl& head, const std::vector<at::Tensor>& raw, const at::Tensor& targets,
                       const DetectLossOptions& options);

}  // namespace revkit
