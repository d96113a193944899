#include "engine/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "core/atomic_file.h"
#include "core/device.h"
#include "core/error.h"
#include "core/logging.h"
#include "core/process_memory.h"
#include "core/rng_state.h"
#include "core/safetensors.h"
#include "core/weights.h"
#include "engine/distributed.h"
#include "engine/progress.h"
#include "engine/results_csv.h"
#include "engine/run_folder.h"
#include "eval/plots.h"
#include "models/weights_file.h"

namespace fs = std::filesystem;

namespace revkit {
namespace {

using Clock = std::chrono::steady_clock;

// A batch's targets as boxes to draw, per image: (x1, y1, x2, y2, confidence 1, class) in pixels.
std::vector<at::Tensor> label_boxes_of(const Batch& batch, int64_t size) {
  std::vector<at::Tensor> out;
  for (int64_t k = 0; k < batch.images.size(0); ++k) {
    const at::Tensor r = batch.targets.index({batch.targets.select(1, 0) == static_cast<double>(k)});
    const at::Tensor xy = r.narrow(1, 2, 2), half = r.narrow(1, 4, 2) / 2;
    out.push_back(at::cat({(xy - half) * size, (xy + half) * size, at::ones({r.size(0), 1}), r.narrow(1, 1, 1)}, 1));
  }
  return out;
}

// A split's images and labels, with what was skipped reported and counted.
DatasetIndex index_for_training(const DataConfig& data, const std::vector<std::string>& split, const char* what,
                                int64_t nc, bool strict, int64_t threads, TrainSummary& summary) {
  DatasetIndex index = index_split(split, nc, strict, data.source);
  const auto dropped = drop_unreadable_images(index, strict, threads);
  for (const auto& d : dropped) logger()->warn("{} (skipped)", d);
  warn_about_labels(index, data.source, what);
  summary.skipped_images += static_cast<int64_t>(dropped.size()) + index.bad_label_images;
  summary.skipped_for_labels += index.bad_label_images;
  logger()->info("{} {}: {} images, {} boxes, {} backgrounds", data.source, what, index.images.size(), index.boxes(),
                 index.backgrounds);
  return index;
}

}  // namespace

Trainer::Trainer(TrainOptions options) : Trainer(std::move(options), TrainingState{}, "") {}

Trainer::Trainer(TrainOptions options, TrainingState resume, std::string state_path) : o_(std::move(options)) {
  if (!state_path.empty()) {
    resume_ = std::move(resume);
    resume_path_ = std::move(state_path);
  } else {
    // The run's files by absolute path, as they are saved with it: --resume may run from another folder. A
    // built-in model's name stays a name.
    const auto builtins = builtin_model_names();
    if (!o_.data.empty()) o_.data = fs::absolute(o_.data).string();
    if (!o_.model.empty() && std::find(builtins.begin(), builtins.end(), o_.model) == builtins.end())
      o_.model = fs::absolute(o_.model).string();
  }
  // A resumed run's options come from its state file, not the command line: their errors name the file.
  auto checked = [&](const std::function<void()>& check) {
    try {
      check();
    } catch (const InputError& e) {
      if (resume_path_.empty()) throw;
      throw InputError(resume_path_, std::string("its saved options: ") + e.what());
    }
  };
  checked([&] { device_ = parse_device(o_.device); });
  if (auto env = distributed_from_environment(); env && env->world_size > 1) {
    // `--device cuda` under a launcher: each process takes the GPU of its local rank, as torchrun's scripts do.
    if (o_.device == "cuda") device_ = parse_device(fmt::format("cuda:{}", env->local_rank));
    env->device = device_;
    dist_ = std::make_unique<Distributed>(*env);
  }
  world_ = dist_ ? dist_->world_size() : 1;
  main_rank_ = !dist_ || dist_->is_main();
  if (!main_rank_) logger()->set_level(LogLevel::Error);  // one rank speaks for all
  out_ = o_.quiet || !main_rank_ ? &null_stream() : &std::cout;
  checked([&] { check_options(); });
  setup_data();
  setup_model();
  setup_optimization();
  setup_run_folder();
}

Trainer::~Trainer() = default;

void Trainer::check_options() const {
  if (o_.epochs <= 0) throw InputError(fmt::format("--epochs must be positive, got {}", o_.epochs));
  if (o_.close_mosaic < -1)
    throw InputError(
        fmt::format("--close-mosaic must be 0 or more (or -1, the model's default), got {}", o_.close_mosaic));
  if (o_.batch <= 0) throw InputError(fmt::format("--batch must be positive, got {}", o_.batch));
  check_image_size_option(o_.imgsz);
  check_batch_splits(o_.batch, world_);
  check_loader_workers(o_.workers);
  // The recipe's numbers: a NaN or a negative one would train on, every step skipped or the schedule upside down.
  const ScheduleOptions& s = o_.schedule;
  if (!(s.lr0 > 0 && std::isfinite(s.lr0))) throw InputError(fmt::format("--lr0 must be positive, got {}", s.lr0));
  if (s.nominal_batch < 1) throw InputError(fmt::format("--nbs must be positive, got {}", s.nominal_batch));
  if (!(s.warmup_epochs >= 0 && std::isfinite(s.warmup_epochs)))
    throw InputError(fmt::format("--warmup-epochs must be 0 or more, got {}", s.warmup_epochs));
  const double mosaic = o_.augment_options.mosaic;
  if (!(mosaic >= 0 && mosaic <= 1)) throw InputError(fmt::format("--mosaic must be between 0 and 1, got {}", mosaic));
  if (o_.backbone.store_every && *o_.backbone.store_every < 0)
    throw InputError(fmt::format("--store-every must be 0 or more, got {}", *o_.backbone.store_every));
  if (o_.checkpoint_every <= 0)
    throw InputError(fmt::format("--checkpoint-every must be positive, got {}", o_.checkpoint_every));
  if (o_.backbone.recompute_chunks && *o_.backbone.recompute_chunks <= 0)
    throw InputError(fmt::format("--recompute-chunks must be positive, got {}", *o_.backbone.recompute_chunks));
  if (o_.backbone.keep_columns && *o_.backbone.keep_columns < 0)
    throw InputError(fmt::format("--keep-columns must be 0 or more, got {}", *o_.backbone.keep_columns));
  if (o_.backbone.keep_matmuls && *o_.backbone.keep_matmuls < 0)
    throw InputError(fmt::format("--keep-matmuls must be 0 or more, got {}", *o_.backbone.keep_matmuls));
  if (o_.backbone.keep_levels && *o_.backbone.keep_levels < 0)
    throw InputError(fmt::format("--keep-levels must be 0 or more, got {}", *o_.backbone.keep_levels));
  if (o_.backbone.memory_budget_mb) {
    if (!(*o_.backbone.memory_budget_mb > 0 && *o_.backbone.memory_budget_mb <= kMaxBudgetMb))
      throw InputError(fmt::format("--memory-budget must be a number of MB above 0 and at most {:g}, got {}",
                                   kMaxBudgetMb, *o_.backbone.memory_budget_mb));
    if (o_.backbone.memory_mode != reversible::MemoryMode::Auto)
      throw InputError("--memory-budget plans the backbone's memory: it needs --memory-mode auto");
  }
}

void Trainer::setup_data() {
  data_ = load_data_config(o_.data);
  nc_ = static_cast<int64_t>(data_.names.size());
  const int64_t threads = std::max<int64_t>(1, o_.workers);
  train_index_ = index_for_training(data_, data_.train, "train", nc_, o_.strict, threads, summary_);
  val_index_ = index_for_training(data_, data_.val, "val", nc_, o_.strict, threads, summary_);
}

void Trainer::setup_model() {
  // Weights and gradients that shrink towards zero become denormal floats, which x86 CPUs handle tens of times
  // slower: without this a long CPU run slows down step by step.
  at::globalContext().setFlushDenormal(true);
  at::manual_seed(o_.seed);
  ModelOverrides overrides;
  overrides.num_classes = nc_;
  overrides.backbone = o_.backbone;
  overrides.channels_last = parse_channels_last(o_.channels_last);
  std::string source;
  config_ = load_model_config(o_.model, &source);
  model_ = DetectionModel(config_, source, overrides);
  head_defaults_ = model_->head()->defaults();
  ema_model_ = DetectionModel(config_, source, overrides);
  if (config_.contains("nc") && config_["nc"].is_number_integer() && config_["nc"].get<int64_t>() != nc_)
    logger()->info("{}: nc {} replaced by the {} classes of {}", source, config_["nc"].get<int64_t>(), nc_,
                   data_.source);
  o_.imgsz = model_->checked_image_size(o_.imgsz);
  if (!o_.weights.empty() && !resume_) {
    transfer_weights(*model_, read_weights_file(o_.weights), o_.weights);
  }
  model_->to(device_);
  ema_model_->to(device_);
  if (dist_) {
    broadcast_module(*dist_, *model_);
    if (o_.sync_bn) logger()->info("SyncBatchNorm in {} convolutions", enable_sync_batch_norm(*model_, *dist_));
  }
}

void Trainer::setup_optimization() {
  LoaderOptions train;
  train.imgsz = o_.imgsz;
  train.batch = o_.batch / world_;
  train.rank = dist_ ? dist_->rank() : 0;
  train.world_size = world_;
  train.workers = o_.workers;
  train.augment = o_.augment;
  train.shuffle = true;
  train.seed = o_.seed;
  train.augment_options = o_.augment_options;
  train.pin_memory = device_.is_cuda();
  const int64_t close_mosaic = o_.close_mosaic >= 0 ? o_.close_mosaic : head_defaults_.close_mosaic;
  if (close_mosaic > 0) train.no_mosaic_from_epoch = std::max<int64_t>(0, o_.epochs - close_mosaic);
  train_loader_ = std::make_unique<DetectionLoader>(std::move(*train_index_), train);
  // Here, before the run folder is written: a batch that BatchNorm cannot normalize would stop training partway.
  // SyncBatchNorm normalizes over every rank's share of the batch.
  const int64_t last = train_loader_->smallest_batch() * (dist_ && o_.sync_bn ? world_ : 1);
  check_training_batch(
      *model_, o_.imgsz, model_->size_divisor(), last,
      world_ > 1 ? fmt::format("{}: --batch {} over {} ranks, the epoch's last", data_.source, o_.batch, world_)
                 : fmt::format("{}: --batch {}, the epoch's last", data_.source, o_.batch));
  LoaderOptions val;
  val.imgsz = o_.imgsz;
  val.letterbox = head_defaults_.ultralytics8_letterbox ? LetterboxRule::Ultralytics8 : LetterboxRule::Yolov5;
  val.batch = o_.batch * 2;
  val.workers = o_.workers;
  val.rank = train.rank;  // each rank validates its share, every image once
  val.world_size = world_;
  val.pad_shards = false;
  val.pin_memory = device_.is_cuda();
  val_loader_ = std::make_unique<DetectionLoader>(std::move(*val_index_), val);
  train_index_.reset();
  val_index_.reset();

  batches_per_epoch_ = train_loader_->batches();
  schedule_ = std::make_unique<TrainingSchedule>(o_.schedule, o_.epochs, batches_per_epoch_, o_.batch);
  optimizer_ = std::make_unique<NesterovSgd>(group_parameters(*model_), o_.schedule.lr0, o_.schedule.momentum,
                                             schedule_->scaled_weight_decay());
  ema_ = std::make_unique<ModelEma>(*model_, *ema_model_);
  loss_context_.imgsz = o_.imgsz;
  if (dist_) {
    loss_context_.world_size = world_;
    loss_context_.sum_over_ranks = [dist = dist_.get()](const std::vector<double>& counts) {
      at::Tensor t = at::tensor(counts, at::kDouble);
      dist->all_reduce_sum({t});
      return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    };
  }
  amp_ = AmpPolicy::choose(o_.amp, device_);
  scaler_ = std::make_unique<GradScaler>(amp_.needs_loss_scaling());
  val_options_.amp = o_.amp;
  val_options_.device = device_;
}

void Trainer::setup_run_folder() {
  if (resume_) {
    run_dir_ = fs::path(resume_path_).parent_path().parent_path().string();
    restore(*resume_);
    resume_->tensors.clear();  // in the model now
  } else {
    run_dir_ = next_run_folder(o_.project, o_.name, o_.exist_ok);
    if (dist_) run_dir_ = dist_->all_gather_bytes(run_dir_).front();                       // rank 0's choice
    if (dist_) at::manual_seed(o_.seed + 1000003 * static_cast<uint64_t>(dist_->rank()));  // distinct drop-path masks
  }
  const fs::path weights_dir = fs::path(run_dir_) / "weights";
  if (main_rank_) create_folder(weights_dir.string());
  if (resume_ && main_rank_)  // what a process killed while writing left behind; the files it was replacing are intact
    for (const auto& f : fs::directory_iterator(weights_dir))
      if (f.path().filename().string().find(".safetensors.tmp.") != std::string::npos) fs::remove(f.path());
  summary_.run_dir = run_dir_;
  if (!resume_ && main_rank_) o_.write_yaml((fs::path(run_dir_) / "args.yaml").string());
  weights_metadata_ = {{"format", "revkit-weights"},
                       {"config", config_.dump()},
                       {"nc", std::to_string(nc_)},
                       {"names", nlohmann::json(data_.names).dump()},
                       {"imgsz", std::to_string(o_.imgsz)}};
  last_path_ = (weights_dir / "last.safetensors").string();
  best_path_ = (weights_dir / "best.safetensors").string();
}

void Trainer::restore(const TrainingState& state) {
  load_named_tensors(*model_, strip_prefix(state.tensors, "model."), resume_path_);
  ema_ = std::make_unique<ModelEma>(*model_, *ema_model_, state.ema_updates);
  load_named_tensors(*ema_model_, strip_prefix(state.tensors, "ema."), resume_path_);
  optimizer_->load_state(state.tensors, resume_path_);
  // Gradients not yet applied: saved summed over ranks, so rank 0 alone takes them back.
  const auto grads = main_rank_ ? strip_prefix(state.tensors, "grad.") : std::map<std::string, at::Tensor>{};
  for (auto& p : model_->named_parameters()) {
    const auto it = grads.find(p.key());
    if (it != grads.end()) p.value().mutable_grad() = restore_like(it->second, p.value());
  }
  RngState::from_tensors(state.tensors).restore();
  scaler_->restore(state.loss_scale, state.loss_scale_good_steps);
  start_epoch_ = state.next_epoch;
  last_opt_step_ = state.last_opt_step + batches_per_epoch_ * start_epoch_;  // saved relative to the epoch's start
  summary_.best_fitness = state.best_fitness;
  rows_ = read_results_csv((fs::path(run_dir_) / "results.csv").string(), start_epoch_);
  if (start_epoch_ >= o_.epochs)
    throw InputError(resume_path_, fmt::format("the run already finished its {} epochs", o_.epochs));
  logger()->info("resuming {} from epoch {} of {}", run_dir_, start_epoch_ + 1, o_.epochs);
}

TrainSummary Trainer::run() {
  logger()->info("{} parameters, image size {}, batch {} (nominal {}), {} batches per epoch, {} loader workers, run {}",
                 count_parameters(*model_), o_.imgsz, o_.batch, o_.schedule.nominal_batch, batches_per_epoch_,
                 o_.workers, run_dir_);
  for (int64_t epoch = start_epoch_; epoch < o_.epochs; ++epoch)
    if (!end_epoch(epoch, train_epoch(epoch))) return summary_;
  final_validation();
  return summary_;
}

Trainer::EpochLosses Trainer::train_epoch(int64_t epoch) {
  model_->train();
  train_loader_->start_epoch(epoch);
  if (o_.augment && epoch == train_loader_->options().no_mosaic_from_epoch && main_rank_)
    logger()->info("closing mosaic: epochs {} to {} are augmented without it", epoch + 1, o_.epochs);
  ProgressLine::print_header(*out_, head_defaults_.loss_names);
  ProgressLine progress(*out_, fmt::format("{}/{}", epoch + 1, o_.epochs), batches_per_epoch_);
  EpochLosses losses;
  int64_t i = 0;
  while (auto batch = train_loader_->next()) {
    const auto t0 = Clock::now();
    const int64_t ni = i + batches_per_epoch_ * epoch;
    schedule_->apply(*optimizer_, ni, epoch);
    if (epoch == 0 && i == 0 && !resume_ && main_rank_)
      save_batch_picture((fs::path(run_dir_) / "train_batch0.jpg").string(), batch->images,
                         label_boxes_of(*batch, o_.imgsz), data_.names);
    const auto step = train_step(*batch, epoch, i);
    if (step) {
      if (ni - last_opt_step_ >= schedule_->accumulate()) optimizer_step(ni);
      for (int k = 0; k < 3; ++k) losses.mean[k] = (losses.mean[k] * i + step->parts[k]) / (i + 1);
    }
    ++i;
    if (!step) continue;
    iteration_seconds_.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    progress.update(i, losses.mean, batch->targets.size(0), o_.imgsz);
  }
  return losses;
}

std::optional<Trainer::StepLosses> Trainer::train_step(const Batch& batch, int64_t epoch, int64_t i) {
  const bool async = device_.is_cuda() && batch.images.is_pinned();
  at::Tensor images = batch.images.to(device_, /*non_blocking=*/async).to(at::kFloat).div_(255);
  const at::Tensor targets = batch.targets.to(device_, /*non_blocking=*/async);
  std::vector<at::Tensor> raw;
  {
    AutocastStateGuard guard(amp_.autocast());
    raw = model_->forward(images);
  }
  for (auto& r : raw) r = r.to(at::kFloat);
  const HeadLoss loss = model_->head()->loss(raw, targets, loss_context_);
  // The three parts and the total, over all ranks (each rank holds its share of the global loss).
  StepLosses step;
  double* parts = step.parts;
  for (int k = 0; k < 3; ++k) parts[k] = loss.parts[k];
  parts[3] = loss.total.item<double>();
  if (dist_) {
    at::Tensor p = at::tensor(std::vector<double>(parts, parts + 4), at::kDouble);
    dist_->all_reduce_sum({p});
    for (int k = 0; k < 4; ++k) parts[k] = p[k].item<double>();
  }
  if (!std::isfinite(parts[3])) {
    ++summary_.nonfinite_steps;
    if (++nonfinite_in_row_ >= o_.max_nonfinite_in_row)
      throw RunStoppedError(
          fmt::format("{} non-finite losses in a row at epoch {}, batch {}: training stopped; the "
                      "last good checkpoint is {}",
                      nonfinite_in_row_, epoch + 1, i + 1, last_path_));
    logger()->warn("non-finite loss at epoch {}, batch {}: step skipped", epoch + 1, i + 1);
    optimizer_->zero_grad();
    return std::nullopt;
  }
  nonfinite_in_row_ = 0;
  scaler_->scale(loss.total).backward();
  return step;
}

void Trainer::optimizer_step(int64_t ni) {
  if (dist_) all_reduce_gradients(*dist_, *model_);
  const bool finite = scaler_->unscale(model_->parameters());
  if (finite) {
    torch::nn::utils::clip_grad_norm_(model_->parameters(), o_.max_grad_norm);
    optimizer_->step();
    ema_->update(*model_);
  }
  scaler_->update(finite);
  optimizer_->zero_grad();
  last_opt_step_ = ni;
}

bool Trainer::end_epoch(int64_t epoch, const EpochLosses& losses) {
  logger()->debug("epoch {}: resident memory {:.1f} MB (peak {:.1f} MB), CPU {:.1f} s since the start", epoch + 1,
                  current_rss_mb(), peak_rss_mb(), cpu_seconds());
  const bool last_epoch = epoch + 1 == o_.epochs;
  const bool stopping_here = o_.stop_after_epochs > 0 && epoch + 1 - start_epoch_ >= o_.stop_after_epochs;
  const bool checkpoint = last_epoch || stopping_here || (epoch + 1) % o_.checkpoint_every == 0;
  // Gradients accumulated since the last optimizer step (the epoch ended mid-accumulation) go into the state;
  // in a data-parallel run summed over ranks, and then kept by rank 0 alone.
  const bool pending_gradients = last_opt_step_ < batches_per_epoch_ * (epoch + 1) - 1;
  if (dist_ && checkpoint && pending_gradients) {
    all_reduce_gradients(*dist_, *model_);
    if (!main_rank_) optimizer_->zero_grad();
  }
  summary_.epochs_done = epoch + 1;
  ValidationResult v;
  if (o_.val || last_epoch) {
    v = validate(*ema_model_, *val_loader_, val_options_, {}, dist_.get());
    print_validation(*out_, v, data_.names, /*per_class=*/false);
  }
  if (!main_rank_) return !(stopping_here && !last_epoch);

  const double fitness = v.fitness();
  const auto& groups = optimizer_->groups();
  rows_.push_back({static_cast<double>(epoch), losses.mean[0], losses.mean[1], losses.mean[2], v.metrics.mp,
                   v.metrics.mr, v.metrics.map50, v.metrics.map50_95, v.losses[0], v.losses[1], v.losses[2],
                   groups[0].lr, groups[1].lr, groups[2].lr});
  write_file_atomically((fs::path(run_dir_) / "results.csv").string(), results_csv(rows_, head_defaults_.loss_names));
  plot_results((fs::path(run_dir_) / "results.png").string(), results_columns(head_defaults_.loss_names), rows_);

  // Weights for users (EMA), then the state to resume from; best when fitness improved (or equals the best so far
  // at a checkpoint, so a run without validation still has a best).
  const bool is_best = fitness > summary_.best_fitness || (checkpoint && fitness >= summary_.best_fitness);
  if (is_best) summary_.best_fitness = fitness;
  auto metadata = weights_metadata_;
  metadata["epoch"] = std::to_string(epoch + 1);
  metadata["fitness"] = fmt::format("{:.6f}", fitness);
  if (is_best) save_weights(best_path_, *ema_model_, metadata);
  if (!checkpoint) return true;
  save_checkpoint(epoch, metadata, pending_gradients);
  if (stopping_here && !last_epoch) {
    summary_.final = v;
    summary_.peak_rss_mb = peak_rss_mb();
    return false;
  }
  return true;
}

void Trainer::save_checkpoint(int64_t epoch, const std::map<std::string, std::string>& metadata,
                              bool pending_gradients) {
  save_weights(last_path_, *ema_model_, metadata);
  TrainingState state;
  state.tensors = with_prefix(named_state(*model_), "model.");
  for (const auto& [k, t] : named_state(*ema_model_)) state.tensors["ema." + k] = t;
  for (const auto& [k, t] : optimizer_->state()) state.tensors[k] = t.cpu();
  if (pending_gradients)
    for (const auto& p : model_->named_parameters())
      if (p.value().grad().defined()) state.tensors["grad." + p.key()] = p.value().grad().cpu().contiguous();
  const std::vector<int> cuda_devices =
      device_.is_cuda() ? std::vector<int>{device_.index() < 0 ? 0 : device_.index()} : std::vector<int>{};
  for (const auto& [k, t] : RngState::capture(cuda_devices).to_tensors()) state.tensors[k] = t;
  state.next_epoch = epoch + 1;
  state.best_fitness = summary_.best_fitness;
  state.ema_updates = ema_->updates();
  state.last_opt_step = last_opt_step_ - batches_per_epoch_ * (epoch + 1);
  state.loss_scale = scaler_->value();
  state.loss_scale_good_steps = scaler_->good_steps();
  state.options = o_.to_json();
  write_training_state(state_path_for(last_path_), state);
}

void Trainer::final_validation() {
  // The best weights, validated once more with the per-class table and the pictures.
  if (dist_) dist_->barrier();  // rank 0 has written them
  if (fs::exists(best_path_)) load_named_tensors(*ema_model_, read_safetensors(best_path_).tensors, best_path_);
  bool drawn = !main_rank_;
  const auto draw_first = [&](const Batch& b, const std::vector<at::Tensor>& dets) {
    if (drawn) return;
    drawn = true;
    save_batch_picture((fs::path(run_dir_) / "val_batch0_labels.jpg").string(), b.images, label_boxes_of(b, o_.imgsz),
                       data_.names);
    save_batch_picture((fs::path(run_dir_) / "val_batch0_pred.jpg").string(), b.images, dets, data_.names);
  };
  summary_.final = validate(*ema_model_, *val_loader_, val_options_, draw_first, dist_.get());
  if (!main_rank_) return;
  *out_ << "\nValidating " << best_path_ << "\n";
  print_validation(*out_, summary_.final, data_.names, /*per_class=*/true);
  if (!iteration_seconds_.empty()) {
    std::sort(iteration_seconds_.begin(), iteration_seconds_.end());
    summary_.seconds_per_iteration = iteration_seconds_[iteration_seconds_.size() / 2];
  }
  summary_.peak_rss_mb = peak_rss_mb();
}

TrainSummary train_detector(const TrainOptions& options) { return Trainer(options).run(); }

TrainSummary resume_training(const std::string& run_or_state, const std::string& project, int64_t workers,
                             int64_t stop_after_epochs) {
  const std::string path = find_training_state(run_or_state, project);
  TrainingState state = read_training_state(path);
  TrainOptions options = TrainOptions::from_json(state.options, path);
  if (workers >= 0) options.workers = workers;
  options.stop_after_epochs = stop_after_epochs;
  return Trainer(std::move(options), std::move(state), path).run();
}

}  // namespace revkit
