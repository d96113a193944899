#pragma once
// Ultralytics 8's detection loss (v8DetectionLoss), as it computes it: a TaskAlignedAssigner picks each target's
// anchors (cell centres inside the target with the best align metric score^alpha x CIoU^beta, top-k; an anchor
// claimed twice goes to the target it overlaps most) and soft class targets (the one-hot class times the align
// metric, normalised per target to its best IoU); BCE classes over every anchor, and for the assigned anchors CIoU
// and Distribution Focal Loss, weighted by the soft targets; each part over the soft targets' sum, times its gain,
// the three summed times the batch size.
#include <ATen/core/Tensor.h>

#include <vector>

#include "heads/head.h"

namespace revkit {

class DflDetectImpl;

struct TaskAlignedOptions {
  int64_t topk = 10;
  double alpha = 0.5, beta = 6.0;
  double eps = 1e-9;
};

// What the assigner decides, for a batch of b images, A anchors, up to n targets per image.
struct TaskAlignedAssignment {
  at::Tensor target_labels;  // [b, A] long: the assigned target's class (that of target 0 where none)
  at::Tensor target_bboxes;  // [b, A, 4] pixels, x1 y1 x2 y2
  at::Tensor target_scores;  // [b, A, nc] soft class targets, 0 off the foreground
  at::Tensor fg_mask;        // [b, A] bool
  at::Tensor target_gt_idx;  // [b, A] long
};

// pd_scores [b, A, nc] (after sigmoid), pd_bboxes [b, A, 4] pixels xyxy, anchor_points [A, 2] pixels,
// gt_labels [b, n, 1], gt_bboxes [b, n, 4] pixels xyxy, mask_gt [b, n, 1] (1 for a real target, 0 for padding).
// Targets with a side below `min_side` (Ultralytics: the second stride) count anchors within that size.
TaskAlignedAssignment task_aligned_assign(const at::Tensor& pd_scores, const at::Tensor& pd_bboxes,
                                          const at::Tensor& anchor_points, const at::Tensor& gt_labels,
                                          const at::Tensor& gt_bboxes, const at::Tensor& mask_gt, int64_t num_classes,
                                          double min_side, const TaskAlignedOptions& options = {});

struct DflLossOptions {
  double box = 7.5, cls = 0.5, dfl = 1.5;  // Ultralytics 8's default gains
  TaskAlignedOptions assigner;
};

// raw: the head's maps, [batch, 4 reg_max + nc, ny, nx] per level. targets: [n, 6] rows of (image index, class,
// x, y, w, h) normalised to [0, 1]. parts: box, cls, dfl with gains; total: their sum times the (global) batch
// size. In a data-parallel run (`context`) the soft targets' sum is the global batch's.
HeadLoss dfl_detect_loss(const DflDetectImpl& head, const std::vector<at::Tensor>& raw, const at::Tensor& targets,
                         const LossContext& context = {}, const DflLossOptions& options = {});

}  // namespace revkit
