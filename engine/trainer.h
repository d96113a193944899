#pragma once
// `revkit train`: YOLOv5's training recipe on a detection model built from a config, with the backbone's memory
// mode chosen by the user. A run lives in <project>/<name>: args.yaml, results.csv (Ultralytics' columns),
// results.png, train and validation batch pictures, and weights/{last,best}.safetensors (EMA weights) each with
// a .state.safetensors to resume from. Started with torchrun's environment (WORLD_SIZE > 1) it trains
// data-parallel: `batch` is the global batch, split evenly over the ranks, and rank 0 alone validates and writes.
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "engine/amp.h"
#include "engine/checkpoint.h"
#include "engine/grad_scaler.h"
#include "engine/optimizer.h"
#include "engine/train_options.h"
#include "engine/validator.h"
#include "models/detection_model.h"

namespace revkit {

class Distributed;

struct TrainSummary {
  std::string run_dir;
  ValidationResult final;  // the best weights, validated after the last epoch
  double best_fitness = 0;
  int64_t epochs_done = 0;
  int64_t skipped_images = 0, skipped_for_labels = 0, nonfinite_steps = 0;  // for labels: of the images skipped
  double seconds_per_iteration = 0;  // median over the run
  double peak_rss_mb = 0;
};

// One training run, as named steps: the constructor sets everything up (data, model, optimizer, run folder, or
// the state of the run it resumes), run() trains epoch by epoch and validates the best weights at the end.
class Trainer {
 public:
  // A new run; InputError for bad options or data, before anything is written.
  explicit Trainer(TrainOptions options);
  // Continues the run whose training state this is, with its saved options.
  Trainer(TrainOptions options, TrainingState resume, std::string state_path);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  TrainSummary run();

 private:
  struct EpochLosses {
    double mean[3] = {0, 0, 0};  // the head's three loss parts over the epoch's batches
  };
  // The whole batch's loss parts and total, summed over ranks.
  struct StepLosses {
    double parts[4] = {0, 0, 0, 0};
  };

  void check_options() const;
  void setup_data();
  void setup_model();
  void setup_optimization();
  void setup_run_folder();
  void restore(const TrainingState& state);

  EpochLosses train_epoch(int64_t epoch);
  // Forward, loss and backward of one batch; nullopt when its loss was not finite (the step is skipped).
  std::optional<StepLosses> train_step(const Batch& batch, int64_t epoch, int64_t i);
  void optimizer_step(int64_t ni);
  // Validation, results and checkpoints after an epoch; false when this process stops here.
  bool end_epoch(int64_t epoch, const EpochLosses& losses);
  void save_checkpoint(int64_t epoch, const std::map<std::string, std::string>& metadata, bool pending_gradients);
  void final_validation();

  TrainOptions o_;
  std::optional<TrainingState> resume_;
  std::string resume_path_;
  c10::Device device_ = c10::kCPU;
  std::unique_ptr<Distributed> dist_;
  int world_ = 1;
  bool main_rank_ = true;
  std::ostream* out_ = nullptr;
  TrainSummary summary_;

  DataConfig data_;
  int64_t nc_ = 0;
  std::optional<DatasetIndex> train_index_, val_index_;
  std::unique_ptr<DetectionLoader> train_loader_, val_loader_;
  int64_t batches_per_epoch_ = 0;

  nlohmann::json config_;
  DetectionModel model_{nullptr}, ema_model_{nullptr};
  std::unique_ptr<TrainingSchedule> schedule_;
  std::unique_ptr<NesterovSgd> optimizer_;
  std::unique_ptr<ModelEma> ema_;
  LossContext loss_context_;
  HeadDefaults head_defaults_;
  AmpPolicy amp_;
  std::unique_ptr<GradScaler> scaler_;
  ValidationOptions val_options_;

  std::string run_dir_, last_path_, best_path_;
  std::map<std::string, std::string> weights_metadata_;
  int64_t start_epoch_ = 0, last_opt_step_ = -1, nonfinite_in_row_ = 0;
  std::vector<std::vector<double>> rows_;  // results.csv
  std::vector<double> iteration_seconds_;
};

TrainSummary train_detector(const TrainOptions& options);

// Continues the run that `run_or_state` names (see find_training_state; empty: the most recent under `project`),
// with its saved options; `workers` (when >= 0) and `stop_after_epochs` may differ from the saved run's.
TrainSummary resume_training(const std::string& run_or_state, const std::string& project, int64_t workers = -1,
                             int64_t stop_after_epochs = 0);

}  // namespace revkit
