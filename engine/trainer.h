#pragma once
// `revkit train`: YOLOv5's training recipe on a detection model built from a config, with the backbone's memory
// mode chosen by the user. A run lives in <project>/<name>: args.yaml, results.csv (Ultralytics' columns),
// results.png, train and validation batch pictures, and weights/{last,best}.safetensors (EMA weights) each with
// a .state.safetensors to resume from. Started with torchrun's environment (WORLD_SIZE > 1) it trains
// data-parallel: `batch` is the global batch, split evenly over the ranks, and rank 0 alone validates and writes.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/augment.h"
#include "engine/optimizer.h"
#include "engine/validate.h"
#include "reversible/reversible_function.h"

namespace revkit {

struct TrainOptions {
  std::string model = "yolov5-revcol-tiny";
  std::string data;
  std::string weights;               // initial weights (names and shapes that match are copied)
  std::string project = "runs/train", name = "exp";
  bool exist_ok = false;             // reuse <project>/<name> instead of numbering a new one
  int64_t epochs = 100, imgsz = 640, batch = 16, workers = 0;
  uint64_t seed = 0;
  std::optional<reversible::MemoryMode> memory_mode;
  int64_t store_every = 0;
  int64_t recompute_chunks = 1;      // recompute each level's blocks in this many pieces (reversible/chunks.h)
  std::optional<double> drop_path;   // the backbone's largest drop-path rate (default: the backbone's own)
  bool amp = false;
  bool strict = false;               // a bad image or label row is an error instead of a warning
  std::string device = "cpu";
  bool augment = true;
  bool cosine = false;
  bool val = true;                   // validate every epoch (else only after the last)
  ScheduleOptions schedule;
  AugmentOptions augment_options;
  double max_grad_norm = 10.0;
  int64_t max_nonfinite_in_row = 3;  // stop after this many non-finite losses in a row
  int64_t checkpoint_every = 1;      // write weights/last (and its state) every so many epochs; the last one always
  int64_t stop_after_epochs = 0;     // end this process after so many epochs, leaving a run to resume (0: run all)
  bool quiet = false;                // no progress lines or tables
  bool sync_bn = false;              // data-parallel runs: BatchNorm statistics over the global batch

  nlohmann::json to_json() const;
  static TrainOptions from_json(const nlohmann::json& j, const std::string& source);
};

struct TrainSummary {
  std::string run_dir;
  ValidationResult final;         // the best weights, validated after the last epoch
  double best_fitness = 0;
  int64_t epochs_done = 0;
  int64_t skipped_images = 0, skipped_label_rows = 0, nonfinite_steps = 0;
  double seconds_per_iteration = 0;  // median over the run
  double peak_rss_mb = 0;
};

TrainSummary train_detector(const TrainOptions& options);

// Continues the run whose state file is given (or the state of "<run>/weights/last"), with its saved options;
// `workers` and `device` may differ. An empty `run` resumes the most recent run under `project`.
TrainSummary resume_training(const std::string& run, const std::string& project, int64_t workers = -1,
                             int64_t stop_after_epochs = 0);

// The device named by "cpu", "cuda" or "cuda:N"; InputError when unknown or not available.
c10::Device parse_device(const std::string& text);

}  // namespace revkit
