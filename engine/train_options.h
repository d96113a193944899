#pragma once
// The options of a training run, as `revkit train` takes them and as a run keeps them: args.yaml for people, and
// the same JSON in each training state for --resume. One field list (train_options.cpp) serves both directions.
#include <nlohmann/json.hpp>
#include <string>

#include "backbones/backbone.h"
#include "data/augment.h"
#include "engine/optimizer.h"

namespace revkit {

// The largest --memory-budget, in MB: beyond a petabyte the budget overflows in bytes.
constexpr double kMaxBudgetMb = 1e9;

// A data-parallel run splits --batch evenly over its ranks: an InputError otherwise.
void check_batch_splits(int64_t batch, int64_t ranks);

struct TrainOptions {
  std::string model = "yolov5-revcol-tiny";
  std::string data;
  std::string weights;  // initial weights (names and shapes that match are copied)
  std::string project = "runs/train", name = "exp";
  bool exist_ok = false;  // reuse <project>/<name> instead of numbering a new one
  int64_t epochs = 100, imgsz = 640, batch = 16, workers = 0;
  uint64_t seed = 0;
  BackboneSettings backbone;  // memory mode, store-every, recompute chunks, drop path, ...
  bool amp = false;
  bool strict = false;  // a bad image or label row is an error instead of a warning
  std::string device = "cpu";
  std::string channels_last = "auto";  // auto, on or off (ModelOverrides::channels_last)
  bool augment = true;
  bool val = true;  // validate every epoch (else only after the last)
  ScheduleOptions schedule;
  AugmentOptions augment_options;
  // The last so many epochs are augmented without mosaic (Ultralytics 8's close_mosaic); -1: the head's default
  // (YOLOv5 0, YOLOv8 10).
  int64_t close_mosaic = -1;
  double max_grad_norm = 10.0;
  int64_t max_nonfinite_in_row = 3;  // stop after this many non-finite losses in a row
  int64_t checkpoint_every = 1;      // write weights/last (and its state) every so many epochs; the last one always
  bool sync_bn = false;              // data-parallel runs: BatchNorm statistics over the global batch
  // Of this process only (not kept with the run):
  int64_t stop_after_epochs = 0;  // end this process after so many epochs, leaving a run to resume (0: run all)
  bool quiet = false;             // no progress lines or tables

  nlohmann::json to_json() const;
  // Fields a saved run lacks keep their defaults; a field of the wrong type is an InputError naming `source`.
  static TrainOptions from_json(const nlohmann::json& j, const std::string& source);
  // The options as YAML (args.yaml), written atomically.
  void write_yaml(const std::string& path) const;
};

}  // namespace revkit
