#include "heads/detect.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>

#include <algorithm>
#include <cmath>

#include "heads/detect_loss.h"

namespace revkit {

DetectImpl::DetectImpl(const DetectOptions& o) {
  nc = o.num_classes();
  TORCH_CHECK(nc > 0, "Detect: the number of classes must be positive, got ", nc);
  TORCH_CHECK(!o.anchors().empty() && o.anchors().size() == o.in_channels().size(), "Detect: ", o.anchors().size(),
              " anchor levels for ", o.in_channels().size(), " inputs");
  nl = static_cast<int64_t>(o.anchors().size());
  na = static_cast<int64_t>(o.anchors()[0].size() / 2);
  TORCH_CHECK(na > 0, "Detect: each level needs at least one anchor (w, h)");
  std::vector<double> flat;
  for (const auto& level : o.anchors()) {
    TORCH_CHECK(static_cast<int64_t>(level.size()) == 2 * na, "Detect: every level needs ", na, " anchors (", 2 * na,
                " numbers), got ", level.size());
    flat.insert(flat.end(), level.begin(), level.end());
  }
  anchors = register_buffer("anchors", at::tensor(flat, at::kFloat).view({nl, na, 2}));
  stride = register_buffer("stride", at::zeros({nl}));
  m = register_module("m", torch::nn::ModuleList());
  for (int64_t c : o.in_channels()) m->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, na * (nc + 5), 1)));
}

void DetectImpl::set_strides(const std::vector<double>& strides) {
  TORCH_CHECK(static_cast<int64_t>(strides.size()) == nl, "Detect: ", strides.size(), " strides for ", nl, " levels");
  at::NoGradGuard no_grad;
  const bool first_time = stride.sum().item<double>() == 0.0;
  at::Tensor s = at::tensor(strides, at::kFloat).to(stride.device());
  if (first_time) {
    anchors.div_(s.view({-1, 1, 1}));
    for (int64_t i = 0; i < nl; ++i) {
      at::Tensor b = m[i]->as<torch::nn::Conv2d>()->bias.view({na, -1});
      b.select(1, 4).add_(std::log(8.0 / std::pow(640.0 / strides[i], 2)));
      b.narrow(1, 5, nc).add_(std::log(0.6 / (nc - 0.99999)));
    }
  }
  stride.copy_(s);
}

std::vector<at::Tensor> DetectImpl::raw(const std::vector<at::Tensor>& features) {
  TORCH_CHECK(static_cast<int64_t>(features.size()) == nl, "Detect: expected ", nl, " feature maps, got ",
              features.size());
  std::vector<at::Tensor> maps;
  for (int64_t i = 0; i < nl; ++i) {
    at::Tensor y = m[i]->as<torch::nn::Conv2d>()->forward(features[i]);
    const int64_t bs = y.size(0), ny = y.size(2), nx = y.size(3);
    maps.push_back(y.view({bs, na, nc + 5, ny, nx}).permute({0, 1, 3, 4, 2}).contiguous());
  }
  return maps;
}

at::Tensor DetectImpl::decode(const std::vector<at::Tensor>& raw) const {
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < nl; ++i) {
    const at::Tensor& r = raw[i];
    const int64_t bs = r.size(0), ny = r.size(2), nx = r.size(3);
    auto opts = r.options();
    at::Tensor yv = at::arange(ny, opts).view({ny, 1}).expand({ny, nx});
    at::Tensor xv = at::arange(nx, opts).view({1, nx}).expand({ny, nx});
    at::Tensor grid = at::stack({xv, yv}, -1).view({1, 1, ny, nx, 2}) - 0.5;
    at::Tensor anchor_px = (anchors[i] * stride[i]).to(r.dtype()).view({1, na, 1, 1, 2});
    at::Tensor p = r.sigmoid();
    at::Tensor xy = (p.narrow(-1, 0, 2) * 2 + grid) * stride[i].to(r.dtype());
    at::Tensor wh = (p.narrow(-1, 2, 2) * 2).pow(2) * anchor_px;
    out.push_back(at::cat({xy, wh, p.narrow(-1, 4, nc + 1)}, -1).view({bs, -1, nc + 5}));
  }
  return at::cat(out, 1);
}

std::vector<at::Tensor> DetectImpl::nms(const at::Tensor& decoded, double conf, double iou, int64_t max_det,
                                        bool multi_label) const {
  return non_max_suppression(decoded, conf, iou, max_det, multi_label);
}

HeadLoss DetectImpl::loss(const std::vector<at::Tensor>& raw, const at::Tensor& targets,
                          const LossContext& context) const {
  DetectLossOptions options = DetectLossOptions::scaled(nl, nc, context.imgsz);
  options.world_size = context.world_size;
  options.sum_over_ranks = context.sum_over_ranks;
  const DetectLoss l = detect_loss(*this, raw, targets, options);
  return {l.total, {l.box, l.obj, l.cls}};
}

HeadDefaults DetectImpl::defaults() const {
  HeadDefaults d;
  d.loss_names = {"box_loss", "obj_loss", "cls_loss"};
  return d;
}

int64_t DetectImpl::classes_in_weights(const std::map<std::string, at::Tensor>& tensors,
                                       const std::string& prefix) const {
  const auto it = tensors.find(prefix + "m.0.weight");
  if (it == tensors.end() || it->second.dim() != 4) return -1;
  const int64_t outputs = it->second.size(0);
  return outputs % na == 0 && outputs / na > 5 ? outputs / na - 5 : 0;
}

std::vector<at::Tensor> non_max_suppression(const at::Tensor& predictions, double conf_threshold, double iou_threshold,
                                            int64_t max_det, bool multi_label) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> results;
  const int64_t nc = predictions.size(2) - 5;
  for (int64_t b = 0; b < predictions.size(0); ++b) {
    at::Tensor p = predictions[b].to(at::kCPU, at::kFloat);
    p = p.index({p.select(1, 4) > conf_threshold});
    const at::Tensor scores = p.narrow(1, 5, nc) * p.narrow(1, 4, 1);  // class confidence = objectness * class
    results.push_back(
        suppress_candidates(p.narrow(1, 0, 4), scores, conf_threshold, iou_threshold, max_det, multi_label));
  }
  return results;
}

}  // namespace revkit
