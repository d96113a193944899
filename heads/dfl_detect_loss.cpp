#include "heads/dfl_detect_loss.h"

#include <ATen/ATen.h>

#include "heads/boxes.h"
#include "heads/dfl_detect.h"

namespace revkit {
namespace {

at::Tensor xyxy_to_xywh(const at::Tensor& b) {
  const at::Tensor lt = b.narrow(-1, 0, 2), rb = b.narrow(-1, 2, 2);
  return at::cat({(lt + rb) / 2, rb - lt}, -1);
}

at::Tensor xywh_to_xyxy(const at::Tensor& b) {
  const at::Tensor xy = b.narrow(-1, 0, 2), half = b.narrow(-1, 2, 2) / 2;
  return at::cat({xy - half, xy + half}, -1);
}

// [b, n, A]: anchors strictly inside each target (sides below `min_side` widened to it about the centre).
at::Tensor candidates_in_targets(const at::Tensor& anchors, const at::Tensor& gt_bboxes, const at::Tensor& mask_gt,
                                 double min_side, double eps = 1e-9) {
  at::Tensor xywh = xyxy_to_xywh(gt_bboxes);
  const at::Tensor wh = xywh.narrow(-1, 2, 2);
  wh.copy_(at::where((wh < min_side).logical_and(mask_gt.to(at::kBool)), at::full({}, min_side, wh.options()), wh));
  const at::Tensor box = xywh_to_xyxy(xywh).unsqueeze(2);  // [b, n, 1, 4]
  const at::Tensor x = anchors.select(1, 0), y = anchors.select(1, 1);
  return (x - box.select(-1, 0) > eps)
      .logical_and(y - box.select(-1, 1) > eps)
      .logical_and(box.select(-1, 2) - x > eps)
      .logical_and(box.select(-1, 3) - y > eps);
}

}  // namespace

TaskAlignedAssignment task_aligned_assign(const at::Tensor& pd_scores, const at::Tensor& pd_bboxes,
                                          const at::Tensor& anchor_points, const at::Tensor& gt_labels,
                                          const at::Tensor& gt_bboxes, const at::Tensor& mask_gt, int64_t nc,
                                          double min_side, const TaskAlignedOptions& o) {
  at::NoGradGuard no_grad;
  const int64_t bs = pd_scores.size(0), anchors = pd_scores.size(1), n = gt_bboxes.size(1);
  TaskAlignedAssignment out;
  if (n == 0) {
    out.target_labels = at::full({bs, anchors}, nc, pd_scores.options().dtype(at::kLong));
    out.target_bboxes = at::zeros_like(pd_bboxes);
    out.target_scores = at::zeros_like(pd_scores);
    out.fg_mask = at::zeros({bs, anchors}, pd_scores.options().dtype(at::kBool));
    out.target_gt_idx = at::zeros({bs, anchors}, pd_scores.options().dtype(at::kLong));
    return out;
  }
  const at::Tensor valid = mask_gt.to(at::kBool);  // [b, n, 1]
  const at::Tensor in_gts = candidates_in_targets(anchor_points, gt_bboxes, mask_gt, min_side);

  // The align metric of every (image, target, anchor) candidate.
  const at::Tensor pairs = in_gts.logical_and(valid).nonzero();  // [k, 3]: image, target, anchor
  const at::Tensor bi = pairs.select(1, 0), gi = pairs.select(1, 1), ai = pairs.select(1, 2);
  const at::Tensor labels = gt_labels.select(2, 0).to(at::kLong);
  const at::Tensor pair_scores = pd_scores.index({bi, ai, labels.index({bi, gi})});
  const at::Tensor pair_overlaps = bbox_ciou_xyxy(gt_bboxes.index({bi, gi}), pd_bboxes.index({bi, ai})).clamp_min(0);
  at::Tensor overlaps = at::zeros({bs, n, anchors}, pd_bboxes.options());
  at::Tensor align = at::zeros({bs, n, anchors}, pd_scores.options());
  overlaps.index_put_({bi, gi, ai}, pair_overlaps);
  align.index_put_({bi, gi, ai}, pair_scores.pow(o.alpha) * pair_overlaps.pow(o.beta));

  // Each target's top-k anchors by the metric (padding targets none; an index picked twice is dropped). Fewer
  // anchors than k (a tiny input) take them all, where Ultralytics' topk would fail.
  const int64_t k = std::min(o.topk, anchors);
  at::Tensor topk_idx = std::get<1>(at::topk(align, k, -1, /*largest=*/true));
  topk_idx.masked_fill_(valid.expand({bs, n, k}).logical_not(), 0);
  at::Tensor counts = at::zeros({bs, n, anchors}, pd_scores.options().dtype(at::kChar));
  counts.scatter_add_(-1, topk_idx, at::ones_like(topk_idx, counts.options()));
  counts.masked_fill_(counts > 1, 0);
  at::Tensor mask_pos = counts * in_gts * valid;  // int8 [b, n, A]

  // An anchor claimed by several targets goes to the one it overlaps most.
  const at::Tensor claimed = (mask_pos.sum(-2, /*keepdim=*/true) > 1).expand({bs, n, anchors});
  const at::Tensor best = at::zeros_like(mask_pos).scatter_(1, overlaps.argmax(1, /*keepdim=*/true), 1);
  mask_pos = at::where(claimed, best, mask_pos);
  const auto [fg, gt_idx] = mask_pos.max(-2);

  const at::Tensor flat_idx = gt_idx + at::arange(bs, gt_idx.options()).unsqueeze(1) * n;
  out.target_labels = labels.flatten().index({flat_idx}).clamp_min(0);
  out.target_bboxes = gt_bboxes.reshape({-1, 4}).index({flat_idx});
  out.fg_mask = fg.to(at::kBool);
  out.target_gt_idx = gt_idx;
  at::Tensor one_hot = at::zeros({bs, anchors, nc}, pd_scores.options().dtype(at::kChar));
  one_hot.scatter_(2, out.target_labels.unsqueeze(-1), 1);
  one_hot = one_hot * (fg.unsqueeze(-1) > 0);

  // Soft targets: the metric scaled so that each target's best anchor gets its best IoU.
  align = align * mask_pos;
  const at::Tensor best_align = std::get<0>(align.max(-1, /*keepdim=*/true));
  const at::Tensor best_overlap = std::get<0>((overlaps * mask_pos).max(-1, /*keepdim=*/true));
  align = align * best_overlap / (best_align + o.eps);
  out.target_scores = one_hot * std::get<0>(align.max(-2)).unsqueeze(-1);
  return out;
}

HeadLoss dfl_detect_loss(const DflDetectImpl& head, const std::vector<at::Tensor>& raw, const at::Tensor& targets_in,
                         const LossContext& context, const DflLossOptions& o) {
  TORCH_CHECK(static_cast<int64_t>(raw.size()) == head.nl, "dfl_detect_loss: ", raw.size(), " maps for ", head.nl,
              " levels");
  TORCH_CHECK(targets_in.dim() == 2 && targets_in.size(1) == 6, "dfl_detect_loss: targets must be [n, 6], got ",
              targets_in.sizes());
  const int64_t nc = head.nc, reg_max = head.reg_max, bs = raw[0].size(0);
  const auto opts = raw[0].options();
  std::vector<at::Tensor> flat;
  for (const auto& r : raw) flat.push_back(r.reshape({bs, 4 * reg_max + nc, -1}));
  const at::Tensor all = at::cat(flat, 2).transpose(1, 2);  // [b, A, 4 reg_max + nc]
  const at::Tensor pred_dist = all.narrow(2, 0, 4 * reg_max), pred_scores = all.narrow(2, 4 * reg_max, nc);
  const auto [points, strides] = head.anchor_points(raw);
  const int64_t anchors = points.size(0);

  // Targets as [b, n, 5] (class, pixel x1 y1 x2 y2), padded with zeros.
  const std::vector<double>& level_strides = head.level_strides();
  const double height = static_cast<double>(raw[0].size(2)) * level_strides[0];
  const double width = static_cast<double>(raw[0].size(3)) * level_strides[0];
  at::Tensor t = targets_in.to(opts);
  t = t.index({t.select(1, 0).argsort(/*stable=*/true)});
  const at::Tensor image = t.select(1, 0).to(at::kLong);
  const at::Tensor counts = at::bincount(image, {}, bs);
  const int64_t n = t.size(0) > 0 ? counts.max().item<int64_t>() : 0;
  at::Tensor gt = at::zeros({bs, n, 5}, opts);
  if (t.size(0) > 0) {
    const at::Tensor first = counts.cumsum(0) - counts;
    const at::Tensor within = at::arange(t.size(0), image.options()) - first.index({image});
    gt.index_put_({image, within}, t.narrow(1, 1, 5));
    const at::Tensor scale = at::tensor({width, height, width, height}, opts);
    gt.narrow(2, 1, 4).copy_(xywh_to_xyxy(gt.narrow(2, 1, 4) * scale));
  }
  const at::Tensor gt_labels = gt.narrow(2, 0, 1), gt_bboxes = gt.narrow(2, 1, 4);
  const at::Tensor mask_gt = (gt_bboxes.sum(2, /*keepdim=*/true) > 0).to(opts.dtype());

  // Predicted boxes in grid units, x1 y1 x2 y2.
  const at::Tensor proj = at::arange(reg_max, opts);
  const at::Tensor dist = at::matmul(pred_dist.view({bs, anchors, 4, reg_max}).softmax(3), proj);
  const at::Tensor pred_boxes = at::cat({points - dist.narrow(2, 0, 2), points + dist.narrow(2, 2, 2)}, 2);

  const double min_side = level_strides[head.nl > 1 ? 1 : 0];
  const TaskAlignedAssignment a =
      task_aligned_assign(pred_scores.detach().sigmoid(), pred_boxes.detach() * strides, points * strides, gt_labels,
                          gt_bboxes, mask_gt, nc, min_side, o.assigner);

  // The soft targets' sum normalises every part: over the global batch in a data-parallel run.
  at::Tensor score_sum = a.target_scores.sum();
  if (context.sum_over_ranks)
    score_sum = at::full({}, context.sum_over_ranks({score_sum.item<double>()}).at(0), score_sum.options());
  score_sum = score_sum.clamp_min(1);

  const at::Tensor cls =
      at::binary_cross_entropy_with_logits(pred_scores, a.target_scores.to(opts.dtype()), {}, {}, at::Reduction::Sum) /
      score_sum;
  at::Tensor box = at::zeros({}, opts), dfl = at::zeros({}, opts);
  const at::Tensor fg = a.fg_mask.nonzero();
  const at::Tensor fi = fg.select(1, 0), fa = fg.select(1, 1);  // image, anchor
  if (fi.numel() > 0) {
    const at::Tensor weight = a.target_scores.index({fi, fa}).sum(-1, /*keepdim=*/true);  // [m, 1]
    const at::Tensor target = (a.target_bboxes / strides).index({fi, fa});                // grid units
    const at::Tensor iou = bbox_ciou_xyxy(pred_boxes.index({fi, fa}), target).unsqueeze(-1);
    box = ((1.0 - iou) * weight).sum() / score_sum;
    // DFL: cross-entropy against the two bins around each side's target distance, weighted by nearness.
    const at::Tensor centre = points.index({fa});
    const at::Tensor ltrb =
        at::cat({centre - target.narrow(1, 0, 2), target.narrow(1, 2, 2) - centre}, 1).clamp(0, reg_max - 1 - 0.01);
    const at::Tensor left = ltrb.to(at::kLong), right = left + 1;
    const at::Tensor w_left = right.to(ltrb.dtype()) - ltrb, w_right = 1 - w_left;
    const at::Tensor logp = at::log_softmax(pred_dist.index({fi, fa}).reshape({-1, reg_max}), 1);
    auto pick = [&](const at::Tensor& bin) { return logp.gather(1, bin.reshape({-1, 1})).view(bin.sizes()); };
    const at::Tensor side = -(pick(left) * w_left + pick(right) * w_right).mean(-1, /*keepdim=*/true);
    dfl = (side * weight).sum() / score_sum;
  }
  const at::Tensor parts = at::stack({box * o.box, cls * o.cls, dfl * o.dfl});
  HeadLoss out;
  out.total = parts.sum() * static_cast<double>(bs * context.world_size);
  const at::Tensor values = parts.detach().to(at::kCPU, at::kDouble);
  for (int k = 0; k < 3; ++k) out.parts[k] = values[k].item<double>();
  return out;
}

}  // namespace revkit
