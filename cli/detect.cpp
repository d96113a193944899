// revkit detect: boxes on images with trained weights, drawn into copies of the images (and YOLO txt files).
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "core/logging.h"
#include "engine/predictor.h"
#include "engine/run_folder.h"
#include "models/weights_file.h"

namespace fs = std::filesystem;

namespace revkit::cli {
namespace {

struct DetectArgs {
  std::string model, weights, source, out, device = "cpu";
  PredictOptions predict;
  bool save_txt = false;
};

int run_detect(DetectArgs a) {
  if (a.weights.empty() || a.source.empty()) throw InputError("detect needs --weights and --source");
  // The device first: loading the weights asks LibTorch about CUDA, whose library must be loaded before, when wanted.
  a.predict.device = parse_device(a.device);
  check_image_size_option(a.predict.imgsz);
  if (!(a.predict.conf >= 0 && a.predict.conf <= 1))
    throw InputError(fmt::format("--conf must be between 0 and 1, got {}", a.predict.conf));
  if (a.predict.max_det < 1) throw InputError(fmt::format("--max-det must be positive, got {}", a.predict.max_det));
  if (a.predict.iou != -1 && !(a.predict.iou >= 0 && a.predict.iou <= 1))
    throw InputError(fmt::format("--iou must be between 0 and 1 (or -1, the model's default), got {}", a.predict.iou));
  const std::vector<std::string> images = list_images(a.source);
  std::vector<std::string> names;
  DetectionModel model = load_detector(a.model, a.weights, &names);
  Predictor predictor(model, names, a.predict);
  const std::string out = a.out.empty() ? next_run_folder("runs/detect", "exp") : a.out;
  // The output folder comes with the first image read: a source of none that decode leaves nothing behind.
  bool created = false;
  int64_t skipped = 0;
  for (const auto& path : images) {
    Prediction p;
    try {
      p = predictor.predict(path);
    } catch (const InputError& e) {
      if (images.size() == 1) throw;
      logger()->warn("{} (skipped)", e.what());
      ++skipped;
      continue;
    }
    if (!created) {
      create_folder(out);
      if (a.save_txt) create_folder((fs::path(out) / "labels").string());
      created = true;
    }
    predictor.save_image(p, out);
    std::cout << fmt::format("{}: {}\n", path, predictor.summary(p));
    if (a.save_txt) predictor.save_txt(p, (fs::path(out) / "labels").string());
  }
  if (!created) throw InputError(a.source, fmt::format("none of its {} images could be read", skipped));
  std::cout << fmt::format("results in {}\n", out);
  return 0;
}

}  // namespace

Command add_detect(CLI::App& app) {
  auto a = std::make_shared<DetectArgs>();
  auto* cmd = app.add_subcommand("detect", "draw a detector's boxes on images");
  cmd->add_option("--model", a->model, "model config or built-in name (default: the one saved with the weights)");
  cmd->add_option("--weights", a->weights, "weights (.safetensors, or a PyTorch .pt/.pth checkpoint)");
  cmd->add_option("--source", a->source, "an image or a folder of images");
  cmd->add_option("--imgsz", a->predict.imgsz, "inference size")->capture_default_str();
  cmd->add_option("--conf", a->predict.conf, "confidence threshold")->capture_default_str();
  cmd->add_option("--iou", a->predict.iou, "NMS IoU threshold (-1: the model's default, YOLOv5 0.45, YOLOv8 0.7)")
      ->capture_default_str();
  cmd->add_option("--max-det", a->predict.max_det, "boxes per image at most")->capture_default_str();
  cmd->add_option("--out", a->out, "output folder (default: runs/detect/exp, numbered)");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--save-txt", a->save_txt, "also write YOLO txt predictions (class x y w h conf, normalised)");
  return [a] { return run_detect(*a); };
}

}  // namespace revkit::cli
