#pragma once
// YOLOv5's Detect head: one 1x1 convolution per level to na * (nc + 5) channels. In training it returns the raw
// maps, [batch, na, ny, nx, nc + 5] per level; in eval, boxes decoded to input pixels, [batch, boxes, nc + 5]
// (xywh, objectness, class scores, all after sigmoid).
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <vector>

#include "heads/head.h"

namespace revkit {

struct DetectOptions {
  DetectOptions(int64_t num_classes, std::vector<std::vector<double>> anchors, std::vector<int64_t> in_channels)
      : num_classes_(num_classes), anchors_(std::move(anchors)), in_channels_(std::move(in_channels)) {}
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(std::vector<std::vector<double>>, anchors);  // per level: w0, h0, w1, h1, ... in input pixels
  TORCH_ARG(std::vector<int64_t>, in_channels);          // per level
};

class DetectImpl : public DetectionHead {
 public:
  explicit DetectImpl(const DetectOptions& options);
  std::vector<at::Tensor> raw(const std::vector<at::Tensor>& features) override;

  // Sets the strides (input pixels per cell of each level), turns the anchors into grid units, and applies
  // Ultralytics' bias initialisation: objectness log(8 / (640 / s)^2), classes log(0.6 / (nc - 0.99999))
  // (YOLOv5 v7.0's `_initialize_biases`; with one class every score starts near 1).
  void set_strides(const std::vector<double>& strides) override;
  // Decodes raw maps into [batch, boxes, nc + 5]: xy = (2 sigmoid - 0.5 + grid) * stride,
  // wh = (2 sigmoid)^2 * anchor.
  at::Tensor decode(const std::vector<at::Tensor>& raw) const override;
  // non_max_suppression below.
  std::vector<at::Tensor> nms(const at::Tensor& decoded, double conf, double iou, int64_t max_det,
                              bool multi_label) const override;
  // detect_loss with the train-time scaling of its gains (DetectLossOptions::scaled).
  HeadLoss loss(const std::vector<at::Tensor>& raw, const at::Tensor& targets,
                const LossContext& context) const override;
  // box/obj/cls losses, NMS IoU 0.6 in validation and 0.45 in detection, boxes clipped, no close_mosaic (YOLOv5 v7.0's
  // train.py and val.py).
  HeadDefaults defaults() const override;
  int64_t classes_in_weights(const std::map<std::string, at::Tensor>& tensors,
                             const std::string& prefix) const override;

  int64_t num_outputs() const { return nc + 5; }
  int64_t num_anchors() const { return na; }

  int64_t na;
  at::Tensor anchors;  // buffer [nl, na, 2], in grid units once strides are set
  torch::nn::ModuleList m{nullptr};
};
TORCH_MODULE(Detect);

// Class-aware non-maximum suppression on decoded predictions [batch, boxes, nc + 5], as YOLOv5's: a candidate's
// confidence is objectness times class score, and both must exceed `conf_threshold`. Single-label (detect.py)
// keeps each box's best class; multi-label (val.py) keeps a candidate for every class above the threshold.
// Returns per image a [k, 6] tensor of (x1, y1, x2, y2, confidence, class), best first, at most `max_det` rows.
std::vector<at::Tensor> non_max_suppression(const at::Tensor& predictions, double conf_threshold = 0.25,
                                            double iou_threshold = 0.45, int64_t max_det = 300,
                                            bool multi_label = false);

}  // namespace revkit
