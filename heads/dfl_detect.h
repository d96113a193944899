#pragma once
// Ultralytics 8's anchor-free Detect head (YOLOv8): per level a box branch (two 3x3 Convs, then a 1x1 convolution
// to 4 x reg_max logits: a distribution over 0..reg_max-1 cells for each side's distance from the cell centre) and
// a class branch (two 3x3 Convs, then 1x1 to nc logits). Its raw maps are [batch, 4 reg_max + nc, ny, nx] per
// level, box logits first (side-major: side * reg_max + bin, sides left, top, right, bottom); decoded, each cell
// centre (x + 0.5, y + 0.5) * stride gives a box from the expected distances (Distribution Focal Loss' integral).
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>

#include <vector>

#include "heads/head.h"

namespace revkit {

struct DflDetectOptions {
  DflDetectOptions(int64_t num_classes, std::vector<int64_t> in_channels)
      : num_classes_(num_classes), in_channels_(std::move(in_channels)) {}
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(std::vector<int64_t>, in_channels);  // per level
  TORCH_ARG(int64_t, reg_max) = 16;              // bins per side
};

// The expected value of each side's distribution: softmax over the bins, weighted by the bin index. The weights
// are a fixed (not trained) 1x1 convolution, as Ultralytics keeps them, so its checkpoints load name for name.
class DistributionIntegralImpl : public torch::nn::Module {
 public:
  explicit DistributionIntegralImpl(int64_t reg_max);
  // [batch, 4 reg_max, anchors] -> [batch, 4, anchors]
  at::Tensor forward(const at::Tensor& logits) const;
  torch::nn::Conv2d conv{nullptr};
  int64_t reg_max;
};
TORCH_MODULE(DistributionIntegral);

class DflDetectImpl : public DetectionHead {
 public:
  explicit DflDetectImpl(const DflDetectOptions& options);
  std::vector<at::Tensor> raw(const std::vector<at::Tensor>& features) override;
  // Sets the strides and, the first time, Ultralytics' bias initialisation: box logits 2.0, classes
  // log(5 / nc / (640 / stride)^2).
  void set_strides(const std::vector<double>& strides) override;
  // [batch, anchors, 4 + nc]: centre x, y, w, h in input pixels, then the class scores after sigmoid.
  at::Tensor decode(const std::vector<at::Tensor>& raw) const override;
  // Ultralytics 8's NMS: a box's candidates are its class scores (no objectness); multi-label only with nc > 1.
  std::vector<at::Tensor> nms(const at::Tensor& decoded, double conf, double iou, int64_t max_det,
                              bool multi_label) const override;
  // dfl_detect_loss with Ultralytics 8's gains (box 7.5, cls 0.5, dfl 1.5).
  HeadLoss loss(const std::vector<at::Tensor>& raw, const at::Tensor& targets,
                const LossContext& context) const override;
  // Ultralytics 8.4's: box/cls/dfl losses, NMS IoU 0.7, validation images shrunk with INTER_LINEAR and their boxes
  // matched unclipped and greedily, close_mosaic 10.
  HeadDefaults defaults() const override;
  int64_t classes_in_weights(const std::map<std::string, at::Tensor>& tensors,
                             const std::string& prefix) const override;

  // Cell centres in grid units [anchors, 2] and their strides [anchors, 1], levels in order, for maps of these
  // sizes (Ultralytics' make_anchors with offset 0.5).
  std::pair<at::Tensor, at::Tensor> anchor_points(const std::vector<at::Tensor>& raw) const;
  // The strides as set_strides received them, on the host: the loss and decoding read them every step.
  const std::vector<double>& level_strides() const { return strides_; }

  int64_t reg_max;
  torch::nn::ModuleList cv2{nullptr}, cv3{nullptr};  // box and class branches, per level
  DistributionIntegral dfl{nullptr};

 private:
  std::vector<double> strides_;
};
TORCH_MODULE(DflDetect);

}  // namespace revkit
