#include "heads/dfl_detect.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/container/sequential.h>

#include <algorithm>
#include <cmath>

#include "heads/dfl_detect_loss.h"
#include "necks/blocks.h"

namespace revkit {

DistributionIntegralImpl::DistributionIntegralImpl(int64_t reg_max) : reg_max(reg_max) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(reg_max, 1, 1).bias(false)));
  at::NoGradGuard no_grad;
  conv->weight.copy_(at::arange(reg_max, at::kFloat).view({1, reg_max, 1, 1}));
  conv->weight.set_requires_grad(false);
}

at::Tensor DistributionIntegralImpl::forward(const at::Tensor& logits) const {
  const int64_t b = logits.size(0), a = logits.size(2);
  const at::Tensor p = logits.view({b, 4, reg_max, a}).softmax(2);
  return at::matmul(conv->weight.view({1, 1, 1, reg_max}).to(p.dtype()), p).view({b, 4, a});
}

DflDetectImpl::DflDetectImpl(const DflDetectOptions& o) : reg_max(o.reg_max()) {
  nc = o.num_classes();
  nl = static_cast<int64_t>(o.in_channels().size());
  TORCH_CHECK(nc > 0, "Detect: the number of classes must be positive, got ", nc);
  TORCH_CHECK(nl > 0, "Detect: needs at least one input level");
  TORCH_CHECK(reg_max > 1, "Detect: reg_max must be at least 2, got ", reg_max);
  stride = register_buffer("stride", at::zeros({nl}));
  const int64_t c0 = o.in_channels()[0];
  const int64_t c2 = std::max({int64_t{16}, c0 / 4, reg_max * 4}), c3 = std::max(c0, std::min<int64_t>(nc, 100));
  cv2 = register_module("cv2", torch::nn::ModuleList());
  cv3 = register_module("cv3", torch::nn::ModuleList());
  for (int64_t c : o.in_channels()) {
    cv2->push_back(torch::nn::Sequential(Conv(ConvOptions(c, c2, 3)), Conv(ConvOptions(c2, c2, 3)),
                                         torch::nn::Conv2d(torch::nn::Conv2dOptions(c2, 4 * reg_max, 1))));
    cv3->push_back(torch::nn::Sequential(Conv(ConvOptions(c, c3, 3)), Conv(ConvOptions(c3, c3, 3)),
                                         torch::nn::Conv2d(torch::nn::Conv2dOptions(c3, nc, 1))));
  }
  dfl = register_module("dfl", DistributionIntegral(reg_max));
}

std::vector<at::Tensor> DflDetectImpl::raw(const std::vector<at::Tensor>& features) {
  TORCH_CHECK(static_cast<int64_t>(features.size()) == nl, "Detect: expected ", nl, " feature maps, got ",
              features.size());
  std::vector<at::Tensor> maps;
  for (int64_t i = 0; i < nl; ++i)
    maps.push_back(at::cat({cv2[i]->as<torch::nn::Sequential>()->forward(features[i]),
                            cv3[i]->as<torch::nn::Sequential>()->forward(features[i])},
                           1));
  return maps;
}

void DflDetectImpl::set_strides(const std::vector<double>& strides) {
  TORCH_CHECK(static_cast<int64_t>(strides.size()) == nl, "Detect: ", strides.size(), " strides for ", nl, " levels");
  at::NoGradGuard no_grad;
  const bool first_time = stride.sum().item<double>() == 0.0;
  if (first_time)
    for (int64_t i = 0; i < nl; ++i) {
      auto last = [](torch::nn::ModuleList branch, int64_t level) {
        return branch[level]->as<torch::nn::Sequential>()->ptr(2)->as<torch::nn::Conv2d>()->bias;
      };
      last(cv2, i).fill_(2.0);
      last(cv3, i).fill_(std::log(5.0 / static_cast<double>(nc) / std::pow(640.0 / strides[i], 2)));
    }
  stride.copy_(at::tensor(strides, at::kFloat).to(stride.device()));
  strides_ = strides;
}

std::pair<at::Tensor, at::Tensor> DflDetectImpl::anchor_points(const std::vector<at::Tensor>& raw) const {
  TORCH_CHECK(static_cast<int64_t>(strides_.size()) == nl, "Detect: the strides are not set (set_strides)");
  std::vector<at::Tensor> points, strides;
  const auto opts = raw[0].options();
  for (int64_t i = 0; i < nl; ++i) {
    const int64_t ny = raw[i].size(2), nx = raw[i].size(3);
    const at::Tensor sx = at::arange(nx, opts) + 0.5, sy = at::arange(ny, opts) + 0.5;
    const auto grid = at::meshgrid({sy, sx}, "ij");
    points.push_back(at::stack({grid[1], grid[0]}, -1).view({-1, 2}));
    strides.push_back(at::full({ny * nx, 1}, strides_[i], opts));
  }
  return {at::cat(points), at::cat(strides)};
}

at::Tensor DflDetectImpl::decode(const std::vector<at::Tensor>& raw) const {
  const int64_t b = raw[0].size(0);
  std::vector<at::Tensor> flat;
  for (const auto& r : raw) flat.push_back(r.reshape({b, 4 * reg_max + nc, -1}));
  const at::Tensor all = at::cat(flat, 2);  // [b, 4 reg_max + nc, anchors]
  const auto [points, strides] = anchor_points(raw);
  const at::Tensor dist = dfl->forward(all.narrow(1, 0, 4 * reg_max));  // [b, 4, anchors]: l, t, r, b
  const at::Tensor anchors = points.t().unsqueeze(0);                   // [1, 2, anchors]
  const at::Tensor x1y1 = anchors - dist.narrow(1, 0, 2), x2y2 = anchors + dist.narrow(1, 2, 2);
  const at::Tensor box = at::cat({(x1y1 + x2y2) / 2, x2y2 - x1y1}, 1) * strides.t().unsqueeze(0);
  return at::cat({box, all.narrow(1, 4 * reg_max, nc).sigmoid()}, 1).transpose(1, 2);
}

std::vector<at::Tensor> DflDetectImpl::nms(const at::Tensor& decoded, double conf, double iou, int64_t max_det,
                                           bool multi_label) const {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> results;
  for (int64_t b = 0; b < decoded.size(0); ++b) {
    at::Tensor p = decoded[b].to(at::kCPU, at::kFloat);
    const at::Tensor scores = p.narrow(1, 4, nc);
    const at::Tensor keep = std::get<0>(scores.max(1)) > conf;
    results.push_back(suppress_candidates(p.narrow(1, 0, 4).index({keep}), scores.index({keep}), conf, iou, max_det,
                                          multi_label && nc > 1));
  }
  return results;
}

HeadLoss DflDetectImpl::loss(const std::vector<at::Tensor>& raw, const at::Tensor& targets,
                             const LossContext& context) const {
  return dfl_detect_loss(*this, raw, targets, context);
}

HeadDefaults DflDetectImpl::defaults() const {
  HeadDefaults d;
  d.loss_names = {"box_loss", "cls_loss", "dfl_loss"};
  d.val_iou = 0.7;
  d.predict_iou = 0.7;
  d.clip_val_boxes = false;
  d.ultralytics8_letterbox = true;
  d.greedy_val_matching = true;
  d.close_mosaic = 10;
  return d;
}

int64_t DflDetectImpl::classes_in_weights(const std::map<std::string, at::Tensor>& tensors,
                                          const std::string& prefix) const {
  const auto it = tensors.find(prefix + "cv3.0.2.weight");
  if (it == tensors.end() || it->second.dim() != 4) return -1;
  return it->second.size(0);
}

}  // namespace revkit
