#include "heads/detect_loss.h"

#include <ATen/ATen.h>

#include <cmath>

#include "heads/boxes.h"
#include "heads/detect.h"

namespace revkit {

DetectLossOptions DetectLossOptions::scaled(int64_t nl, int64_t nc, int64_t imgsz) {
  DetectLossOptions o;
  const double levels = 3.0 / static_cast<double>(nl);
  o.box *= levels;
  o.cls *= static_cast<double>(nc) / 80.0 * levels;
  o.obj *= std::pow(static_cast<double>(imgsz) / 640.0, 2) * levels;
  return o;
}

namespace {

struct LevelTargets {
  at::Tensor image, anchor, gj, gi;  // indices into the level's map
  at::Tensor box;                    // (x offset in cell, y offset, w, h) in grid units
  at::Tensor anchor_wh;              // the assigned anchors, grid units
  at::Tensor cls;
};

// Ultralytics' build_targets for one level.
LevelTargets assign(const DetectImpl& head, int64_t level, const at::IntArrayRef shape, const at::Tensor& targets,
                    double anchor_t) {
  const int64_t na = head.na, nt = targets.size(0);
  const int64_t ny = shape[2], nx = shape[3];
  const auto opts = targets.options();
  at::Tensor anchors = head.anchors[level].to(opts);  // [na, 2], grid units
  // [na, nt, 7]: (image, class, x, y, w, h, anchor) with xywh in grid units
  at::Tensor ai = at::arange(na, opts).view({na, 1}).expand({na, nt}).unsqueeze(-1);
  at::Tensor gain = at::tensor({1.0, 1.0, double(nx), double(ny), double(nx), double(ny), 1.0}, opts);
  at::Tensor t = at::cat({targets.unsqueeze(0).expand({na, nt, 6}), ai}, 2) * gain;
  at::Tensor offsets;
  if (nt > 0) {
    at::Tensor r = t.narrow(2, 4, 2) / anchors.unsqueeze(1);
    at::Tensor keep = std::get<0>(at::max(r, 1.0 / r).max(2)) < anchor_t;
    t = t.index({keep});  // [m, 7]
    const double g = 0.5;
    at::Tensor gxy = t.narrow(1, 2, 2);
    at::Tensor gxi = at::tensor({double(nx), double(ny)}, opts) - gxy;
    at::Tensor jk = ((at::fmod(gxy, 1.0) < g).logical_and(gxy > 1.0)).t();              // left, top neighbours
    at::Tensor lm = ((at::fmod(gxi, 1.0) < g).logical_and(gxi > 1.0)).t();              // right, bottom neighbours
    at::Tensor select = at::stack({at::ones_like(jk[0]), jk[0], jk[1], lm[0], lm[1]});  // [5, m]
    at::Tensor off = at::tensor({0.0, 0.0, 1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0}, opts).view({5, 1, 2}) * g;
    offsets = (at::zeros_like(gxy).unsqueeze(0) + off).index({select});
    t = t.unsqueeze(0).expand({5, t.size(0), 7}).index({select});
  } else {
    t = t[0];
    offsets = at::zeros({0, 2}, opts);
  }
  LevelTargets out;
  at::Tensor gxy = t.narrow(1, 2, 2), gwh = t.narrow(1, 4, 2);
  at::Tensor gij = (gxy - offsets).to(at::kLong);
  out.image = t.select(1, 0).to(at::kLong);
  out.cls = t.select(1, 1).to(at::kLong);
  out.anchor = t.select(1, 6).to(at::kLong);
  out.gi = gij.select(1, 0).clamp(0, nx - 1);
  out.gj = gij.select(1, 1).clamp(0, ny - 1);
  out.box = at::cat({gxy - gij, gwh}, 1);
  out.anchor_wh = anchors.index({out.anchor});
  return out;
}

}  // namespace

DetectLoss detect_loss(const DetectImpl& head, const std::vector<at::Tensor>& raw, const at::Tensor& targets_in,
                       const DetectLossOptions& o) {
  TORCH_CHECK(static_cast<int64_t>(raw.size()) == head.nl, "detect_loss: ", raw.size(), " maps for ", head.nl,
              " levels");
  TORCH_CHECK(targets_in.dim() == 2 && targets_in.size(1) == 6, "detect_loss: targets must be [n, 6], got ",
              targets_in.sizes());
  const auto opts = raw[0].options().dtype(at::kFloat);
  const at::Tensor targets = targets_in.to(opts);
  static const std::vector<double> kBalance3 = {4.0, 1.0, 0.4}, kBalanceN = {4.0, 1.0, 0.25, 0.06, 0.02};
  const auto& balance = head.nl == 3 ? kBalance3 : kBalanceN;
  at::Tensor lbox = at::zeros({}, opts), lobj = at::zeros({}, opts), lcls = at::zeros({}, opts);
  const int64_t nc = head.nc;
  std::vector<LevelTargets> assigned;
  std::vector<double> counts;
  for (int64_t i = 0; i < head.nl; ++i) {
    assigned.push_back(assign(head, i, raw[i].sizes(), targets, o.anchor_t));
    counts.push_back(static_cast<double>(assigned.back().image.size(0)));
  }
  if (o.sum_over_ranks) counts = o.sum_over_ranks(counts);
  const double ranks = static_cast<double>(o.world_size);
  for (int64_t i = 0; i < head.nl; ++i) {
    const at::Tensor& p = raw[i];
    const LevelTargets& t = assigned[i];
    at::Tensor tobj = at::zeros(p.sizes().slice(0, 4), opts);
    const int64_t n = t.image.size(0);
    if (n > 0) {
      at::Tensor ps = p.index({t.image, t.anchor, t.gj, t.gi}).to(at::kFloat);  // [n, nc + 5]
      at::Tensor pxy = ps.narrow(1, 0, 2).sigmoid() * 2 - 0.5;
      at::Tensor pwh = (ps.narrow(1, 2, 2).sigmoid() * 2).pow(2) * t.anchor_wh;
      at::Tensor iou = bbox_ciou(at::cat({pxy, pwh}, 1), t.box);
      lbox = lbox + (1.0 - iou).sum() / counts[i];  // the mean over the (global) batch's targets
      tobj.index_put_({t.image, t.anchor, t.gj, t.gi}, iou.detach().clamp_min(0));
      if (nc > 1) {
        at::Tensor target_cls = at::zeros({n, nc}, opts);
        target_cls.index_put_({at::arange(n, t.cls.options()), t.cls}, 1.0);
        lcls =
            lcls + at::binary_cross_entropy_with_logits(ps.narrow(1, 5, nc), target_cls, {}, {}, at::Reduction::Sum) /
                       (counts[i] * static_cast<double>(nc));
      }
    }
    // Every rank holds the same number of cells: the global mean is the mean of the ranks' means.
    lobj = lobj + at::binary_cross_entropy_with_logits(p.select(-1, 4).to(at::kFloat), tobj) * (balance[i] / ranks);
  }
  lbox = lbox * o.box;
  lobj = lobj * o.obj;
  lcls = lcls * o.cls;
  DetectLoss out;
  out.total = (lbox + lobj + lcls) * static_cast<double>(raw[0].size(0) * o.world_size);
  out.box = lbox.item<double>();
  out.obj = lobj.item<double>();
  out.cls = lcls.item<double>();
  return out;
}

}  // namespace revkit
