// revkit train: YOLOv5's recipe on a detector built from a config, with the backbone's memory mode of choice.
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "core/error.h"
#include "engine/launcher.h"
#include "engine/trainer.h"

namespace revkit::cli {

Command add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto memory_mode = std::make_shared<std::string>();
  auto resume = std::make_shared<std::string>();
  auto nproc = std::make_shared<int>(1);
  auto* cmd = app.add_subcommand("train", "train a detector on a dataset in the Ultralytics layout");
  cmd->add_option("--model", o->model, "model config (.yaml/.json) or built-in name")->capture_default_str();
  cmd->add_option("--data", o->data, "data yaml (path, train, val, names)");
  cmd->add_option("--epochs", o->epochs, "epochs")->capture_default_str();
  cmd->add_option("--imgsz", o->imgsz, "train and val image size (pixels)")->capture_default_str();
  cmd->add_option("--batch", o->batch, "batch size")->capture_default_str();
  cmd->add_option("--workers", o->workers, "loader threads decoding and augmenting ahead (0: none)")
      ->capture_default_str();
  cmd->add_option("--memory-mode", *memory_mode,
                  "backbone memory mode: off, column, full or auto (default: the backbone's own, column for RevCol)");
  cmd->add_option("--store-every", o->backbone.store_every, "full mode: keep every k-th column");
  cmd->add_option("--keep-columns", o->backbone.keep_columns,
                  "column and full modes: keep the internals of the last K backbone columns (no recompute)")
      ->check(zero_or_more());
  cmd->add_option("--keep-matmuls", o->backbone.keep_matmuls,
                  "column and full modes: the last M recomputed backbone columns keep their matrix products' outputs "
                  "(their recompute skips them)")
      ->check(zero_or_more());
  cmd->add_option("--keep-levels", o->backbone.keep_levels,
                  "column and full modes: every recomputed backbone column keeps the internals of its last L levels "
                  "(no recompute of those; RevCol's upper levels cost little memory)")
      ->check(zero_or_more());
  cmd->add_option("--memory-budget", o->backbone.memory_budget_mb,
                  "auto mode: MB of activation memory the backbone's columns may take (default: half of what the "
                  "device has available); implies --memory-mode auto")
      ->check(memory_budget_mb());
  cmd->add_option("--recompute-chunks", o->backbone.recompute_chunks,
                  "recompute each backbone level's blocks in this many pieces")
      ->check(positive());
  cmd->add_option("--drop-path", o->backbone.drop_path,
                  "the backbone's largest drop-path rate (default: the backbone's own)")
      ->check(drop_path_rate());
  cmd->add_option("--channels-last", o->channels_last,
                  "convolution weights and images channels-last (auto: unless the model has a backbone row)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  cmd->add_flag("--amp", o->amp, "mixed precision: bf16 autocast on CPU, fp16 with loss scaling on CUDA");
  cmd->add_option("--seed", o->seed, "seed of weights, data order and augmentation")
      ->check(seed_value())
      ->capture_default_str();
  cmd->add_option("--weights", o->weights,
                  "initial weights (.safetensors or a PyTorch .pt/.pth; names and shapes that match are copied, a "
                  "backbone checkpoint goes into the backbone row)");
  cmd->add_option("--resume", *resume, "continue a run: its folder or state file (default: the most recent)")
      ->expected(0, 1);
  cmd->add_option("--project", o->project, "folder of runs")->capture_default_str();
  cmd->add_option("--name", o->name, "run name (numbered if it exists)")->capture_default_str();
  cmd->add_flag("--exist-ok", o->exist_ok, "reuse <project>/<name> instead of numbering a new run");
  cmd->add_flag("--strict", o->strict, "a bad image or label row is an error, not a warning");
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--cos-lr", o->schedule.cosine, "cosine learning-rate decay instead of linear");
  cmd->add_flag("!--no-augment", o->augment, "no mosaic, affine, HSV or flip (e.g. to fit a few images)");
  cmd->add_flag("!--noval", o->val, "validate only after the last epoch");
  cmd->add_option("--checkpoint-every", o->checkpoint_every,
                  "write weights/last every N epochs (the last epoch always)")
      ->capture_default_str();
  cmd->add_option("--nproc", *nproc, "data-parallel: start this many local worker processes (as torchrun does)")
      ->capture_default_str();
  cmd->add_option("--stop-after-epochs", o->stop_after_epochs,
                  "end this process after N epochs, leaving a run to --resume (time-limited jobs)");
  cmd->add_flag("--sync-bn", o->sync_bn, "data-parallel: BatchNorm statistics over the global batch");
  cmd->add_option("--lr0", o->schedule.lr0, "initial learning rate")->capture_default_str();
  cmd->add_option("--warmup-epochs", o->schedule.warmup_epochs, "warm-up epochs")->capture_default_str();
  cmd->add_option("--nbs", o->schedule.nominal_batch, "nominal batch: gradients accumulate to about this many images")
      ->capture_default_str();
  cmd->add_option("--mosaic", o->augment_options.mosaic, "probability of a mosaic")->capture_default_str();
  cmd->add_option("--close-mosaic", o->close_mosaic,
                  "augment the last N epochs without mosaic (-1: the model's default, YOLOv5 0, YOLOv8 10)")
      ->capture_default_str();
  return [o, memory_mode, resume, nproc, cmd] {
    // A resumed run goes on with the options it was started with: one given now would be ignored without a word.
    if (cmd->count("--resume") > 0)
      for (const CLI::Option* option : cmd->get_options()) {
        const std::string name = option->get_name();
        if (option->count() > 0 && name != "--resume" && name != "--workers" && name != "--stop-after-epochs" &&
            name != "--project" && name != "--nproc")
          throw InputError(fmt::format("{} cannot be given with --resume: the run goes on with the options it was "
                                       "started with (--workers, --stop-after-epochs and --nproc may change)",
                                       name));
      }
    if (*nproc < 1) throw InputError(fmt::format("--nproc must be at least 1, got {}", *nproc));
    if (*nproc > 1 && !std::getenv("WORLD_SIZE")) {
      // Refused before any rank is started: more ranks than cores only compete for them, and a batch they cannot
      // share is what every rank would refuse in turn.
      const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      if (*nproc > cores)
        throw InputError(
            fmt::format("--nproc {}: this machine has {} cores, and a rank needs one at least", *nproc, cores));
      if (cmd->count("--resume") == 0) check_batch_splits(o->batch, *nproc);
      // The same command in each worker, without --nproc; the workers find each other through the environment.
      std::vector<std::string> args;
      const auto& all = command_line();
      for (size_t i = 0; i < all.size(); ++i) {
        if (all[i] == "--nproc")
          ++i;
        else if (all[i].rfind("--nproc=", 0) != 0)
          args.push_back(all[i]);
      }
      return launch_local_workers(*nproc, args);
    }
    TrainSummary s;
    if (cmd->count("--resume") > 0) {
      s = resume_training(*resume, o->project, cmd->count("--workers") > 0 ? o->workers : -1, o->stop_after_epochs);
    } else {
      if (o->data.empty()) throw InputError("train needs --data (a data yaml), or --resume");
      if (!memory_mode->empty()) o->backbone.memory_mode = reversible::parse_memory_mode(*memory_mode);
      if (o->backbone.memory_budget_mb && !o->backbone.memory_mode)
        o->backbone.memory_mode = reversible::MemoryMode::Auto;
      s = train_detector(*o);
    }
    if (const char* rank = std::getenv("RANK"); rank && std::string(rank) != "0") return 0;  // rank 0 reports
    std::cout << fmt::format(
        "\n{} epochs done, results in {}\n  mAP@0.5 {:.3f}, mAP@0.5:0.95 {:.3f}; {:.2f} s per iteration (median), peak "
        "RSS "
        "{:.0f} MB; skipped {} images ({} for a bad label row), {} non-finite steps\n",
        s.epochs_done, s.run_dir, s.final.metrics.map50, s.final.metrics.map50_95, s.seconds_per_iteration,
        s.peak_rss_mb, s.skipped_images, s.skipped_for_labels, s.nonfinite_steps);
    return 0;
  };
}

}  // namespace revkit::cli
