#pragma once
// Validation of a detector as YOLOv5's val.py (and Ultralytics 8's validator) does it: letterboxed images (square,
// or rect batches as the loader makes them), multi-label class-aware NMS (conf 0.001, IoU the head's default: 0.6
// YOLOv5, 0.7 YOLOv8; at most 300 boxes per image), detections and labels scored in each original image's pixels
// (YOLOv5 clips the detections to the image first, Ultralytics 8 does not), matched and integrated by pycocotools'
// rule (ApRule::Coco) or val.py's (ApRule::Ultralytics); the three losses when asked; COCO-format detections.
#include <ATen/core/Tensor.h>

#include <array>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "data/loader.h"
#include "eval/coco.h"
#include "eval/metrics.h"
#include "models/detection_model.h"

namespace revkit {

struct ValidationOptions {
  double conf = 0.001;
  double iou = -1;  // NMS IoU threshold; -1: the head's default (YOLOv5 0.6, YOLOv8 0.7)
  int64_t max_det = 300;
  bool compute_loss = true;
  bool amp = false;               // bf16 autocast on CPU, fp16 on CUDA
  bool keep_detections = false;   // fill ValidationResult::detections (for --save-json)
  ApRule ap_rule = ApRule::Coco;  // how AP is integrated and P/R read (ApRule::Ultralytics: as val.py)
  c10::Device device = c10::kCPU;
};

struct ValidationResult {
  DetectionMetrics metrics;
  std::array<double, 3> losses{};  // mean losses per batch, the head's three parts
  int64_t images = 0, instances = 0;
  double seconds = 0;
  std::vector<ImageDetections> detections;
  double fitness() const { return 0.1 * metrics.map50 + 0.9 * metrics.map50_95; }  // YOLOv5's
};

// Called with each batch and its detections per image ([k, 6], letterboxed pixels), e.g. to draw the first one.
using BatchCallback = std::function<void(const Batch&, const std::vector<at::Tensor>&)>;

class Distributed;

// Runs `model` (switched to eval for the duration) over every batch of `loader` (epoch 0). With `dist`, the loader
// holds this rank's shard and the ranks pool their matches and losses: every rank returns the metrics of the
// whole set (detections for --save-json stay per rank).
ValidationResult validate(DetectionModelImpl& model, DetectionLoader& loader, const ValidationOptions& options,
                          const BatchCallback& on_batch = {}, Distributed* dist = nullptr);

// Ultralytics' results table: a header and the "all" row, then with `per_class` one row per class with labels.
void print_validation(std::ostream& out, const ValidationResult& v, const std::vector<std::string>& names,
                      bool per_class);

}  // namespace revkit
