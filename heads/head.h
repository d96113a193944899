#pragma once
// What every detection head gives the model, the trainer and the validator, so a new family (a head, its loss,
// its decoding and its recipe defaults) plugs into the builder as a layer type without changes to the builder:
// YOLOv5's anchor-based Detect and Ultralytics 8's anchor-free DFL head both implement it.
#include <torch/nn/module.h>

#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace revkit {

// How a training step's loss is computed beyond the predictions and targets.
struct LossContext {
  int64_t imgsz = 640;  // the training image size (YOLOv5 scales its gains by it)
  // Data-parallel runs: `world_size` ranks with equal batches; `sum_over_ranks` sums numbers over the ranks. Each
  // rank's loss is then its share of the loss of the global batch, so that the ranks' gradients sum to the gradient
  // of one process holding the whole batch.
  int64_t world_size = 1;
  std::function<std::vector<double>(const std::vector<double>&)> sum_over_ranks;
};

struct HeadLoss {
  at::Tensor total;               // scalar, for backward: the parts' sum times the (global) batch size
  std::array<double, 3> parts{};  // the three parts with their gains, before the batch-size factor
};

// What a family does differently in training and validation, where the recipe does not say otherwise.
struct HeadDefaults {
  std::array<std::string, 3> loss_names;  // results.csv and the progress line: box_loss, obj_loss, ...
  double val_iou = 0.6;                   // the NMS IoU threshold of validation
  double predict_iou = 0.45;              // and of detection
  bool clip_val_boxes = true;             // detections clipped to the image before they are matched
  bool ultralytics8_letterbox = false;    // validation letterboxes as Ultralytics 8.4 (else as YOLOv5's val.py)
  bool greedy_val_matching = false;       // Ultralytics 8.4's matching and AP (else YOLOv5 val.py's)
  int64_t close_mosaic = 0;               // the last so many epochs train without mosaic
};

class DetectionHead : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  // Training mode: raw(features). Eval mode: {decode(raw(features))}.
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& features);
  // The head's maps, one per level, whatever the mode (validation computes its loss and its boxes from them).
  virtual std::vector<at::Tensor> raw(const std::vector<at::Tensor>& features) = 0;
  // Input pixels per cell of each level, found by the builder from a probe; a head initialises its biases here.
  virtual void set_strides(const std::vector<double>& strides) = 0;
  // Boxes in input pixels, [batch, boxes, 4 + scores]: x, y, w, h, then the head's scores after sigmoid.
  virtual at::Tensor decode(const std::vector<at::Tensor>& raw) const = 0;
  // Per image a [k, 6] tensor (x1, y1, x2, y2, confidence, class), best first, at most `max_det` rows.
  // Multi-label (validation) keeps a candidate for every class above `conf`; else each box's best class.
  virtual std::vector<at::Tensor> nms(const at::Tensor& decoded, double conf, double iou, int64_t max_det,
                                      bool multi_label) const = 0;
  // targets: [n, 6] rows of (image index, class, x, y, w, h), coordinates normalised to [0, 1].
  virtual HeadLoss loss(const std::vector<at::Tensor>& raw, const at::Tensor& targets,
                        const LossContext& context) const = 0;
  virtual HeadDefaults defaults() const = 0;
  // The class count that the head's output convolutions in `tensors` (named `prefix` + the head's names) imply,
  // for weights from elsewhere without metadata: -1 when the tensors are not there, 0 when their shapes fit no
  // class count (weights of another head).
  virtual int64_t classes_in_weights(const std::map<std::string, at::Tensor>& tensors,
                                     const std::string& prefix) const = 0;

  int64_t num_classes() const { return nc; }
  int64_t num_levels() const { return nl; }

  int64_t nc = 0, nl = 0;
  at::Tensor stride;  // buffer [nl], input pixels per cell
};

// Class-aware NMS of candidates given as centre boxes [n, 4] (x, y, w, h) and class scores [n, nc]: a candidate is
// a (box, class) pair whose score exceeds `conf` (every such class with `multi_label`, else only the box's best);
// the best 30000 go into greedy NMS. The shared part of every head's nms().
at::Tensor suppress_candidates(const at::Tensor& xywh, const at::Tensor& scores, double conf, double iou,
                               int64_t max_det, bool multi_label);

}  // namespace revkit
