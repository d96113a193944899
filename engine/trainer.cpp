#include "engine/trainer.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/nn/utils/clip_grad.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/atomic_file.h"
#include "core/autocast_state.h"
#include "core/error.h"
#include "core/logging.h"
#include "core/process_memory.h"
#include "core/rng_state.h"
#include "core/safetensors.h"
#include "core/weights.h"
#include "engine/checkpoint.h"
#include "engine/dataset.h"
#include "engine/distributed.h"
#include "engine/detection_model.h"
#include "engine/loader.h"
#include "engine/plots.h"
#include "reversible/reversible_module.h"
#include "heads/detect.h"
#include "heads/detect_loss.h"

namespace fs = std::filesystem;

namespace revkit {
namespace {

using Clock = std::chrono::steady_clock;

const std::vector<std::string>& results_columns() {
  static const std::vector<std::string> columns = {
      "epoch",          "train/box_loss", "train/obj_loss", "train/cls_loss",      "metrics/precision",
      "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss", "val/obj_loss",
      "val/cls_loss",   "x/lr0",          "x/lr1",          "x/lr2"};
  return columns;
}

// Ultralytics' increment_path: runs/train/exp, exp2, exp3, ...
std::string new_run_dir(const std::string& project, const std::string& name, bool exist_ok) {
  fs::path p = fs::path(project) / name;
  if (exist_ok || !fs::exists(p)) return p.string();
  for (int n = 2;; ++n) {
    fs::path candidate = fs::path(project) / (name + std::to_string(n));
    if (!fs::exists(candidate)) return candidate.string();
  }
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{:02}:{:02}", s / 60, s % 60);
}

// The live line of an epoch: rewritten in place on a terminal, printed every few seconds otherwise.
class ProgressLine {
 public:
  ProgressLine(std::ostream& out, std::string epoch, int64_t total)
      : out_(out), epoch_(std::move(epoch)), total_(total), start_(Clock::now()) {
    tty_ = &out == &std::cout && ::isatty(STDOUT_FILENO) != 0;
  }
  void update(int64_t done, const double losses[3], int64_t instances, int64_t size, bool last) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double per_it = done > 0 ? elapsed / done : 0;
    const std::string line = fmt::format(
        "{:>10} {:>8} {:>10.4f} {:>10.4f} {:>10.4f} {:>10} {:>6}: {:3.0f}% {}/{} [{}<{}, {}]", epoch_,
        fmt::format("{:.2f}G", current_rss_mb() / 1024.0), losses[0], losses[1], losses[2], instances, size,
        100.0 * done / total_, done, total_, format_duration(elapsed), format_duration(per_it * (total_ - done)),
        per_it >= 1 || per_it == 0 ? fmt::format("{:.2f}s/it", per_it) : fmt::format("{:.2f}it/s", 1 / per_it));
    const double since = std::chrono::duration<double>(Clock::now() - last_print_).count();
    if (tty_) {
      out_ << "\r" << line << (last ? "\n" : "") << std::flush;
    } else if (last || since > 10 || done == 1) {
      out_ << line << "\n" << std::flush;
      last_print_ = Clock::now();
    }
  }

 private:
  std::ostream& out_;
  std::string epoch_;
  int64_t total_;
  Clock::time_point start_, last_print_ = Clock::now();
  bool tty_ = false;
};

// Where a quiet run's output goes.
std::ostream& null_stream() {
  static std::ostream sink(nullptr);
  return sink;
}

void print_progress_header(std::ostream& out) {
  out << fmt::format("{:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>6}\n", "Epoch", "RSS", "box_loss", "obj_loss",
                           "cls_loss", "Instances", "Size");
}

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

std::string yaml_scalar(const nlohmann::json& v) {
  if (v.is_string()) return nlohmann::json(v.get<std::string>()).dump();  // quoted, escaped
  return v.dump();
}

void write_args_yaml(const std::string& path, const nlohmann::json& args) {
  std::ostringstream out;
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (it.value().is_object()) {
      out << it.key() << ":\n";
      for (auto jt = it.value().begin(); jt != it.value().end(); ++jt) out << "  " << jt.key() << ": " << yaml_scalar(jt.value()) << "\n";
    } else {
      out << it.key() << ": " << yaml_scalar(it.value()) << "\n";
    }
  }
  write_file_atomically(path, out.str());
}

std::string results_csv(const std::vector<std::vector<double>>& rows) {
  std::ostringstream out;
  const auto& columns = results_columns();
  for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << columns[i];
  out << "\n";
  for (const auto& r : rows) {
    out << static_cast<int64_t>(r[0]);
    for (size_t i = 1; i < r.size(); ++i) out << "," << fmt::format("{:.6g}", r[i]);
    out << "\n";
  }
  return out.str();
}

std::vector<std::vector<double>> read_results_csv(const std::string& path, int64_t before_epoch) {
  std::vector<std::vector<double>> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) row.push_back(std::strtod(cell.c_str(), nullptr));
    if (row.size() == results_columns().size() && row[0] < static_cast<double>(before_epoch)) rows.push_back(row);
  }
  return rows;
}

// Everything needed to continue a run, as kept in a state file.
struct ResumePoint {
  std::string state_path;
  std::map<std::string, at::Tensor> tensors;
  int64_t next_epoch = 0, ema_updates = 0, last_opt_step = -1;
  double best_fitness = 0;
  nlohmann::json args;
};

std::map<std::string, at::Tensor> with_prefix(const std::map<std::string, at::Tensor>& tensors, const std::string& prefix) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : tensors) out[prefix + k] = v;
  return out;
}

std::map<std::string, at::Tensor> strip_prefix(const std::map<std::string, at::Tensor>& tensors, const std::string& prefix) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : tensors)
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = v;
  return out;
}

DatasetIndex index_for_training(const DataConfig& data, const std::vector<std::string>& split, const char* what,
                                int64_t nc, bool strict, int64_t threads, int64_t* skipped_images, int64_t* skipped_rows) {
  DatasetIndex index = index_split(split, nc, strict, data.source);
  for (size_t i = 0; i < index.problems.size(); ++i) {
    if (i < 5) logger()->warn("{} (skipped)", index.problems[i]);
    if (i == 5) logger()->warn("... {} more label rows skipped", index.problems.size() - 5);
  }
  if (index.orphan_labels > 0) logger()->warn("{}: {} label files without an image (skipped)", data.source, index.orphan_labels);
  const auto dropped = drop_unreadable_images(index, strict, threads);
  for (const auto& d : dropped) logger()->warn("{} (skipped)", d);
  *skipped_images += static_cast<int64_t>(dropped.size());
  *skipped_rows += static_cast<int64_t>(index.problems.size());
  logger()->info("{} {}: {} images, {} boxes, {} backgrounds", data.source, what, index.images.size(), index.boxes(),
                 index.backgrounds);
  return index;
}

TrainSummary run(TrainOptions o, const ResumePoint* resume) {
  const c10::Device device = parse_device(o.device);
  std::unique_ptr<Distributed> dist;
  if (const auto env = distributed_from_environment(); env && env->world_size > 1) dist = std::make_unique<Distributed>(*env);
  const int world = dist ? dist->world_size() : 1;
  const bool main_rank = !dist || dist->is_main();
  if (!main_rank) logger()->set_level(LogLevel::Error);  // one rank speaks for all
  std::ostream& out = o.quiet || !main_rank ? null_stream() : std::cout;
  if (o.epochs <= 0) throw InputError(fmt::format("--epochs must be positive, got {}", o.epochs));
  if (o.batch <= 0) throw InputError(fmt::format("--batch must be positive, got {}", o.batch));
  if (o.imgsz <= 0) throw InputError(fmt::format("--imgsz must be positive, got {}", o.imgsz));
  if (o.batch % world != 0) throw InputError(fmt::format("--batch {} must be a multiple of the {} ranks", o.batch, world));
  if (o.workers < 0) throw InputError(fmt::format("--workers must be 0 or more, got {}", o.workers));
  if (o.checkpoint_every <= 0) throw InputError(fmt::format("--checkpoint-every must be positive, got {}", o.checkpoint_every));
  if (o.recompute_chunks <= 0)
    throw InputError(fmt::format("--recompute-chunks must be positive, got {}", o.recompute_chunks));
  TrainSummary summary;

  const DataConfig data = load_data_config(o.data);
  const auto nc = static_cast<int64_t>(data.names.size());
  const int64_t check_threads = std::max<int64_t>(1, o.workers);
  DatasetIndex train_index = index_for_training(data, data.train, "train", nc, o.strict, check_threads,
                                                &summary.skipped_images, &summary.skipped_label_rows);
  DatasetIndex val_index = index_for_training(data, data.val, "val", nc, o.strict, check_threads,
                                              &summary.skipped_images, &summary.skipped_label_rows);

  // Weights and gradients that shrink towards zero become denormal floats, which x86 CPUs handle tens of times
  // slower: without this a long CPU run slows down step by step.
  at::globalContext().setFlushDenormal(true);
  at::manual_seed(o.seed);
  ModelOverrides overrides;
  overrides.num_classes = nc;
  overrides.memory_mode = o.memory_mode;
  if (o.store_every > 0) overrides.store_every = o.store_every;
  overrides.drop_path = o.drop_path;
  std::string model_source;
  const nlohmann::json config = load_model_config(o.model, &model_source);
  DetectionModel model(config, model_source, overrides);
  DetectionModel ema_model(config, model_source, overrides);
  for (auto* part : reversible::reversible_modules(*model)) part->column_options().recompute_chunks(o.recompute_chunks);
  if (config.contains("nc") && config["nc"].is_number_integer() && config["nc"].get<int64_t>() != nc)
    logger()->info("{}: nc {} replaced by the {} classes of {}", model_source, config["nc"].get<int64_t>(), nc, data.source);

  o.imgsz = model->checked_image_size(o.imgsz);
  if (!o.weights.empty() && !resume) {
    int64_t total = 0;
    const int64_t copied = transfer_weights(*model, read_safetensors(o.weights).tensors, o.weights, &total);
    logger()->info("{}: transferred {}/{} tensors", o.weights, copied, total);
  }
  model->to(device);
  ema_model->to(device);
  if (dist) {
    broadcast_module(*dist, *model);
    if (o.sync_bn) logger()->info("SyncBatchNorm in {} convolutions", enable_sync_batch_norm(*model, *dist));
  }

  LoaderOptions train_loader_options;
  train_loader_options.imgsz = o.imgsz;
  train_loader_options.batch = o.batch / world;
  train_loader_options.rank = dist ? dist->rank() : 0;
  train_loader_options.world_size = world;
  train_loader_options.workers = o.workers;
  train_loader_options.augment = o.augment;
  train_loader_options.shuffle = true;
  train_loader_options.seed = o.seed;
  train_loader_options.augment_options = o.augment_options;
  DetectionLoader train_loader(train_index, train_loader_options);
  LoaderOptions val_loader_options;
  val_loader_options.imgsz = o.imgsz;
  val_loader_options.batch = o.batch * 2;
  val_loader_options.workers = o.workers;
  val_loader_options.rank = dist ? dist->rank() : 0;  // each rank validates its share, every image once
  val_loader_options.world_size = world;
  val_loader_options.pad_shards = false;
  DetectionLoader val_loader(val_index, val_loader_options);

  const int64_t nb = train_loader.batches();
  ScheduleOptions schedule_options = o.schedule;
  schedule_options.cosine = o.cosine;
  TrainingSchedule schedule(schedule_options, o.epochs, nb, o.batch);
  NesterovSgd optimizer(group_parameters(*model), o.schedule.lr0, o.schedule.momentum, schedule.scaled_weight_decay());
  ModelEma ema(*model, *ema_model);
  DetectLossOptions loss_options = DetectLossOptions::scaled(model->head()->nl, nc, o.imgsz);
  if (dist) {
    loss_options.world_size = world;
    loss_options.sum_over_ranks = [&dist](const std::vector<double>& counts) {
      at::Tensor t = at::tensor(counts, at::kDouble);
      dist->all_reduce_sum({t});
      return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    };
  }

  int64_t start_epoch = 0, last_opt_step = -1;
  std::string run_dir;
  std::vector<std::vector<double>> rows;
  if (resume) {
    run_dir = fs::path(resume->state_path).parent_path().parent_path().string();
    load_named_tensors(*model, strip_prefix(resume->tensors, "model."), resume->state_path);
    ema = ModelEma(*model, *ema_model, resume->ema_updates);
    load_named_tensors(*ema_model, strip_prefix(resume->tensors, "ema."), resume->state_path);
    optimizer.load_state(resume->tensors, resume->state_path);
    // Gradients not yet applied: saved summed over ranks, so rank 0 alone takes them back.
    const auto grads = main_rank ? strip_prefix(resume->tensors, "grad.") : std::map<std::string, at::Tensor>{};
    for (auto& p : model->named_parameters()) {
      const auto it = grads.find(p.key());
      if (it != grads.end()) p.value().mutable_grad() = it->second.to(p.value().options()).clone();
    }
    RngState::from_tensors(resume->tensors).restore();
    start_epoch = resume->next_epoch;
    last_opt_step = resume->last_opt_step + nb * start_epoch;  // saved relative to the epoch's first iteration
    summary.best_fitness = resume->best_fitness;
    rows = read_results_csv((fs::path(run_dir) / "results.csv").string(), start_epoch);
    if (start_epoch >= o.epochs) throw InputError(resume->state_path, fmt::format("the run already finished its {} epochs", o.epochs));
    logger()->info("resuming {} from epoch {} of {}", run_dir, start_epoch + 1, o.epochs);
  } else {
    run_dir = new_run_dir(o.project, o.name, o.exist_ok);
    if (dist) run_dir = dist->all_gather_bytes(run_dir).front();  // rank 0's choice
    if (dist) at::manual_seed(o.seed + 1000003 * static_cast<uint64_t>(dist->rank()));  // distinct drop-path masks per rank
  }
  const fs::path weights_dir = fs::path(run_dir) / "weights";
  if (main_rank) fs::create_directories(weights_dir);
  if (resume && main_rank)  // what a process killed while writing left behind; the files it was replacing are intact
    for (const auto& f : fs::directory_iterator(weights_dir))
      if (f.path().filename().string().find(".safetensors.tmp.") != std::string::npos) fs::remove(f.path());
  summary.run_dir = run_dir;
  if (!resume && main_rank) write_args_yaml((fs::path(run_dir) / "args.yaml").string(), o.to_json());

  const std::map<std::string, std::string> weights_metadata = {
      {"format", "revkit-weights"}, {"config", config.dump()}, {"nc", std::to_string(nc)},
      {"names", nlohmann::json(data.names).dump()}, {"imgsz", std::to_string(o.imgsz)}};
  const std::string last_path = (weights_dir / "last.safetensors").string();
  const std::string best_path = (weights_dir / "best.safetensors").string();

  AutocastState autocast = AutocastState::current();
  if (o.amp && device.is_cpu()) autocast.cpu_enabled = true, autocast.cpu_dtype = at::kBFloat16;
  if (o.amp && device.is_cuda()) autocast.cuda_enabled = true, autocast.cuda_dtype = at::kHalf;
  const bool loss_scaling = o.amp && device.is_cuda();
  double loss_scale = 65536.0;
  int64_t good_scaled_steps = 0;

  ValidationOptions val_options;
  val_options.amp = o.amp;
  val_options.device = device;
  std::vector<double> iteration_seconds;
  int64_t nonfinite_in_row = 0;

  logger()->info("{} parameters, image size {}, batch {} (nominal {}), {} batches per epoch, {} loader workers, run {}",
                 count_parameters(*model), o.imgsz, o.batch, o.schedule.nominal_batch, nb, o.workers, run_dir);
  for (int64_t epoch = start_epoch; epoch < o.epochs; ++epoch) {
    model->train();
    train_loader.start_epoch(epoch);
    print_progress_header(out);
    ProgressLine progress(out, fmt::format("{}/{}", epoch + 1, o.epochs), nb);
    double mean_loss[3] = {0, 0, 0};
    int64_t i = 0;
    while (auto batch = train_loader.next()) {
      const auto t0 = Clock::now();
      const int64_t ni = i + nb * epoch;
      schedule.apply(optimizer, ni, epoch);
      if (epoch == 0 && i == 0 && !resume && main_rank) {
        save_batch_picture((fs::path(run_dir) / "train_batch0.jpg").string(), batch->images,
                           label_boxes_of(*batch, o.imgsz), data.names);
      }
      at::Tensor images = batch->images.to(device).to(at::kFloat).div_(255);
      const at::Tensor targets = batch->targets.to(device);
      std::vector<at::Tensor> raw;
      {
        AutocastStateGuard guard(autocast);
        raw = model->forward(images);
      }
      for (auto& r : raw) r = r.to(at::kFloat);
      const DetectLoss loss = detect_loss(*model->head(), raw, targets, loss_options);
      // The three parts and the total, over all ranks (each rank holds its share of the global loss).
      double parts[4] = {loss.box, loss.obj, loss.cls, loss.total.item<double>()};
      if (dist) {
        at::Tensor p = at::tensor(std::vector<double>(parts, parts + 4), at::kDouble);
        dist->all_reduce_sum({p});
        for (int k = 0; k < 4; ++k) parts[k] = p[k].item<double>();
      }
      if (!std::isfinite(parts[3])) {
        ++summary.nonfinite_steps;
        if (++nonfinite_in_row >= o.max_nonfinite_in_row)
          throw std::runtime_error(fmt::format("{} non-finite losses in a row at epoch {}, batch {}: training stopped; the last "
                                               "good checkpoint is {}", nonfinite_in_row, epoch + 1, i + 1, last_path));
        logger()->warn("non-finite loss at epoch {}, batch {}: step skipped", epoch + 1, i + 1);
        optimizer.zero_grad();
        ++i;
        continue;
      }
      nonfinite_in_row = 0;
      (loss_scaling ? loss.total * loss_scale : loss.total).backward();

      if (ni - last_opt_step >= schedule.accumulate()) {
        if (dist) all_reduce_gradients(*dist, *model);
        bool finite = true;
        if (loss_scaling) {
          at::NoGradGuard no_grad;
          for (auto& p : model->parameters())
            if (p.grad().defined()) {
              p.mutable_grad().div_(loss_scale);
              finite = finite && at::isfinite(p.grad()).all().item<bool>();
            }
        }
        if (finite) {
          torch::nn::utils::clip_grad_norm_(model->parameters(), o.max_grad_norm);
          optimizer.step();
          ema.update(*model);
          if (loss_scaling && ++good_scaled_steps == 2000) loss_scale *= 2, good_scaled_steps = 0;
        } else {
          loss_scale /= 2, good_scaled_steps = 0;
        }
        optimizer.zero_grad();
        last_opt_step = ni;
      }
      for (int k = 0; k < 3; ++k) mean_loss[k] = (mean_loss[k] * i + parts[k]) / (i + 1);
      ++i;
      iteration_seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      progress.update(i, mean_loss, targets.size(0), o.imgsz, i == nb);
    }

    logger()->debug("epoch {}: resident memory {:.1f} MB (peak {:.1f} MB)", epoch + 1, current_rss_mb(), peak_rss_mb());
    const bool last_epoch = epoch + 1 == o.epochs;
    const bool stopping_here = o.stop_after_epochs > 0 && epoch + 1 - start_epoch >= o.stop_after_epochs;
    const bool checkpoint = last_epoch || stopping_here || (epoch + 1) % o.checkpoint_every == 0;
    // Gradients accumulated since the last optimizer step (the epoch ended mid-accumulation) go into the state;
    // in a data-parallel run summed over ranks, and then kept by rank 0 alone.
    const bool pending_gradients = last_opt_step < nb * (epoch + 1) - 1;
    if (dist && checkpoint && pending_gradients) {
      all_reduce_gradients(*dist, *model);
      if (!main_rank) optimizer.zero_grad();
    }
    summary.epochs_done = epoch + 1;
    ValidationResult v;
    if (o.val || last_epoch) {
      v = validate(*ema_model, val_loader, val_options, {}, dist.get());
      print_validation(out, v, data.names, /*per_class=*/false);
    }
    if (!main_rank) {
      if (stopping_here && !last_epoch) return summary;
      continue;
    }
    const double fitness = v.fitness();
    const auto& groups = optimizer.groups();
    rows.push_back({static_cast<double>(epoch), mean_loss[0], mean_loss[1], mean_loss[2], v.metrics.mp, v.metrics.mr,
                    v.metrics.map50, v.metrics.map50_95, v.box, v.obj, v.cls, groups[0].lr, groups[1].lr, groups[2].lr});
    write_file_atomically((fs::path(run_dir) / "results.csv").string(), results_csv(rows));
    plot_results((fs::path(run_dir) / "results.png").string(), results_columns(), rows);

    // Checkpoint: weights for users (EMA), then the state to resume from; best when fitness improved (or equals
    // the best so far at a checkpoint, so a run without validation still has a best).
    const bool is_best = fitness > summary.best_fitness || (checkpoint && fitness >= summary.best_fitness);
    if (is_best) summary.best_fitness = fitness;
    auto metadata = weights_metadata;
    metadata["epoch"] = std::to_string(epoch + 1);
    metadata["fitness"] = fmt::format("{:.6f}", fitness);
    if (is_best) save_weights(best_path, *ema_model, metadata);
    if (!checkpoint) continue;
    save_weights(last_path, *ema_model, metadata);
    std::map<std::string, at::Tensor> state = with_prefix(named_state(*model), "model.");
    for (const auto& [k, t] : named_state(*ema_model)) state["ema." + k] = t;
    for (const auto& [k, t] : optimizer.state()) state[k] = t.cpu();
    if (pending_gradients)
      for (const auto& p : model->named_parameters())
        if (p.value().grad().defined()) state["grad." + p.key()] = p.value().grad().cpu().contiguous();
    const std::vector<int> cuda_devices = device.is_cuda() ? std::vector<int>{device.index() < 0 ? 0 : device.index()} : std::vector<int>{};
    for (const auto& [k, t] : RngState::capture(cuda_devices).to_tensors()) state[k] = t;
    write_safetensors(state_path_for(last_path), state,
                      {{"format", "revkit-train-state"},
                       {"next_epoch", std::to_string(epoch + 1)},
                       {"best_fitness", fmt::format("{:.17g}", summary.best_fitness)},
                       {"ema_updates", std::to_string(ema.updates())},
                       {"last_opt_step", std::to_string(last_opt_step - nb * (epoch + 1))},
                       {"args", o.to_json().dump()}});
    if (stopping_here && !last_epoch) {
      summary.final = v;
      summary.peak_rss_mb = peak_rss_mb();
      return summary;
    }
  }

  // The best weights, validated once more with the per-class table and the pictures.
  if (dist) dist->barrier();  // rank 0 has written them
  if (fs::exists(best_path)) load_named_tensors(*ema_model, read_safetensors(best_path).tensors, best_path);
  bool drawn = !main_rank;
  summary.final = validate(*ema_model, val_loader, val_options, [&](const Batch& b, const std::vector<at::Tensor>& dets) {
    if (drawn) return;
    drawn = true;
    save_batch_picture((fs::path(run_dir) / "val_batch0_labels.jpg").string(), b.images, label_boxes_of(b, o.imgsz), data.names);
    save_batch_picture((fs::path(run_dir) / "val_batch0_pred.jpg").string(), b.images, dets, data.names);
  }, dist.get());
  if (!main_rank) return summary;
  out << "\nValidating " << best_path << "\n";
  print_validation(out, summary.final, data.names, /*per_class=*/true);
  if (!iteration_seconds.empty()) {
    std::sort(iteration_seconds.begin(), iteration_seconds.end());
    summary.seconds_per_iteration = iteration_seconds[iteration_seconds.size() / 2];
  }
  summary.peak_rss_mb = peak_rss_mb();
  return summary;
}

ResumePoint read_resume_point(const std::string& path) {
  ResumePoint r;
  r.state_path = path;
  Safetensors file = read_safetensors(path);
  auto meta = [&](const char* key) {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw InputError(path, fmt::format("not a revkit training state (no '{}' in its metadata)", key));
    return it->second;
  };
  if (meta("format") != "revkit-train-state") throw InputError(path, "not a revkit training state");
  r.next_epoch = std::stoll(meta("next_epoch"));
  r.best_fitness = std::stod(meta("best_fitness"));
  r.ema_updates = std::stoll(meta("ema_updates"));
  r.last_opt_step = std::stoll(meta("last_opt_step"));
  try {
    r.args = nlohmann::json::parse(meta("args"));
  } catch (const nlohmann::json::exception&) {
    throw InputError(path, "the saved training options cannot be read");
  }
  r.tensors = std::move(file.tensors);
  return r;
}

}  // namespace

nlohmann::json TrainOptions::to_json() const {
  return {{"model", model},
          {"data", data},
          {"weights", weights},
          {"project", project},
          {"name", name},
          {"epochs", epochs},
          {"imgsz", imgsz},
          {"batch", batch},
          {"workers", workers},
          {"seed", seed},
          {"memory_mode", memory_mode ? reversible::to_string(*memory_mode) : std::string("config")},
          {"store_every", store_every},
          {"recompute_chunks", recompute_chunks},
          {"drop_path", drop_path ? nlohmann::json(*drop_path) : nlohmann::json()},
          {"amp", amp},
          {"strict", strict},
          {"device", device},
          {"augment", augment},
          {"cosine", cosine},
          {"val", val},
          {"max_grad_norm", max_grad_norm},
          {"max_nonfinite_in_row", max_nonfinite_in_row},
          {"sync_bn", sync_bn},
          {"checkpoint_every", checkpoint_every},
          {"hyp",
           {{"lr0", schedule.lr0},
            {"lrf", schedule.lrf},
            {"momentum", schedule.momentum},
            {"weight_decay", schedule.weight_decay},
            {"warmup_epochs", schedule.warmup_epochs},
            {"warmup_momentum", schedule.warmup_momentum},
            {"warmup_bias_lr", schedule.warmup_bias_lr},
            {"min_warmup_iterations", schedule.min_warmup_iterations},
            {"nominal_batch", schedule.nominal_batch},
            {"hsv_h", augment_options.hsv_h},
            {"hsv_s", augment_options.hsv_s},
            {"hsv_v", augment_options.hsv_v},
            {"translate", augment_options.translate},
            {"scale", augment_options.scale},
            {"fliplr", augment_options.fliplr},
            {"mosaic", augment_options.mosaic}}}};
}

TrainOptions TrainOptions::from_json(const nlohmann::json& j, const std::string& source) {
  TrainOptions o;
  try {
    o.model = j.at("model");
    o.data = j.at("data");
    o.weights = j.at("weights");
    o.project = j.at("project");
    o.name = j.at("name");
    o.epochs = j.at("epochs");
    o.imgsz = j.at("imgsz");
    o.batch = j.at("batch");
    o.workers = j.at("workers");
    o.seed = j.at("seed");
    const std::string mode = j.at("memory_mode");
    if (mode != "config") o.memory_mode = reversible::parse_memory_mode(mode);
    o.store_every = j.at("store_every");
    o.recompute_chunks = j.value("recompute_chunks", int64_t{1});
    if (j.contains("drop_path") && j["drop_path"].is_number()) o.drop_path = j["drop_path"].get<double>();
    o.amp = j.at("amp");
    o.strict = j.at("strict");
    o.device = j.at("device");
    o.augment = j.at("augment");
    o.cosine = j.at("cosine");
    o.val = j.at("val");
    o.max_grad_norm = j.at("max_grad_norm");
    o.max_nonfinite_in_row = j.at("max_nonfinite_in_row");
    o.sync_bn = j.value("sync_bn", false);
    o.checkpoint_every = j.at("checkpoint_every");
    const auto& h = j.at("hyp");
    o.schedule.lr0 = h.at("lr0");
    o.schedule.lrf = h.at("lrf");
    o.schedule.momentum = h.at("momentum");
    o.schedule.weight_decay = h.at("weight_decay");
    o.schedule.warmup_epochs = h.at("warmup_epochs");
    o.schedule.warmup_momentum = h.at("warmup_momentum");
    o.schedule.warmup_bias_lr = h.at("warmup_bias_lr");
    o.schedule.min_warmup_iterations = h.at("min_warmup_iterations");
    o.schedule.nominal_batch = h.at("nominal_batch");
    o.augment_options.hsv_h = h.at("hsv_h");
    o.augment_options.hsv_s = h.at("hsv_s");
    o.augment_options.hsv_v = h.at("hsv_v");
    o.augment_options.translate = h.at("translate");
    o.augment_options.scale = h.at("scale");
    o.augment_options.fliplr = h.at("fliplr");
    o.augment_options.mosaic = h.at("mosaic");
  } catch (const nlohmann::json::exception& e) {
    throw InputError(source, std::string("the saved training options are incomplete: ") + e.what());
  }
  return o;
}

c10::Device parse_device(const std::string& text) {
  if (text == "cpu") return c10::kCPU;
  if (text == "cuda" || text.rfind("cuda:", 0) == 0) {
    if (!at::hasCUDA()) throw InputError(fmt::format("--device {}: this build of LibTorch has no CUDA device available", text));
    return text == "cuda" ? c10::Device(c10::kCUDA, 0) : c10::Device(text);
  }
  throw InputError(fmt::format("--device must be cpu, cuda or cuda:N, got '{}'", text));
}

TrainSummary train_detector(const TrainOptions& options) { return run(options, nullptr); }

TrainSummary resume_training(const std::string& run_or_state, const std::string& project, int64_t workers,
                             int64_t stop_after_epochs) {
  std::string path = run_or_state;
  if (path.empty()) {
    // The most recently written state under the project.
    fs::file_time_type newest{};
    if (fs::is_directory(project))
      for (const auto& f : fs::recursive_directory_iterator(project))
        if (f.path().filename() == "last.state.safetensors" && (path.empty() || f.last_write_time() > newest))
          path = f.path().string(), newest = f.last_write_time();
    if (path.empty()) throw InputError(project, "no run to resume (no weights/last.state.safetensors below it)");
  } else if (fs::is_directory(path)) {
    path = (fs::path(path) / "weights" / "last.state.safetensors").string();
  } else if (path.size() < 19 || path.substr(path.size() - 19) != ".state.safetensors") {
    path = state_path_for(path);
  }
  if (!fs::exists(path)) throw InputError(path, "no training state to resume from");
  ResumePoint point = read_resume_point(path);
  TrainOptions options = TrainOptions::from_json(point.args, path);
  if (workers >= 0) options.workers = workers;
  options.stop_after_epochs = stop_after_epochs;
  return run(options, &point);
}

}  // namespace revkit
