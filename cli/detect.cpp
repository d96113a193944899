// revkit detect: boxes on images with trained weights, drawn into copies of the images (and YOLO txt files).
#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/logging.h"
#include "engine/checkpoint.h"
#include "engine/images.h"
#include "engine/plots.h"
#include "engine/trainer.h"
#include "heads/detect.h"

namespace fs = std::filesystem;

namespace revkit::cli {
namespace {

struct DetectArgs {
  std::string model, weights, source, out, device = "cpu";
  int64_t imgsz = 640;
  double conf = 0.25, iou = 0.45;
  int64_t max_det = 1000;
  bool save_txt = false;
};

bool looks_like_image(const fs::path& p) {
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp" || ext == ".tif" || ext == ".tiff";
}

int run_detect(const DetectArgs& a) {
  if (a.weights.empty() || a.source.empty()) throw InputError("detect needs --weights and --source");
  if (a.imgsz <= 0) throw InputError("--imgsz must be positive");
  std::vector<std::string> images;
  if (fs::is_directory(a.source)) {
    for (const auto& f : fs::directory_iterator(a.source))
      if (f.is_regular_file() && looks_like_image(f.path())) images.push_back(f.path().string());
    std::sort(images.begin(), images.end());
    if (images.empty()) throw InputError(a.source, "no images in this folder");
  } else if (fs::is_regular_file(a.source)) {
    images.push_back(a.source);
  } else {
    throw InputError(a.source, "no such image or folder");
  }
  std::vector<std::string> names;
  DetectionModel model = load_detector(a.model, a.weights, &names);
  const c10::Device device = parse_device(a.device);
  model->to(device);
  model->eval();
  const int64_t imgsz = model->checked_image_size(a.imgsz);
  std::string out = a.out;
  if (out.empty()) {
    out = "runs/detect/exp";
    for (int n = 2; fs::exists(out); ++n) out = "runs/detect/exp" + std::to_string(n);
  }
  fs::create_directories(out);
  if (a.save_txt) fs::create_directories(fs::path(out) / "labels");
  at::NoGradGuard no_grad;
  for (const auto& path : images) {
    LetterboxedImage lb;
    try {
      lb = load_letterboxed(path, imgsz, at::zeros({0, 5}));
    } catch (const InputError& e) {
      if (images.size() == 1) throw;
      logger()->warn("{} (skipped)", e.what());
      continue;
    }
    const at::Tensor input = lb.image.unsqueeze(0).to(device).to(at::kFloat).div_(255);
    at::Tensor dets = non_max_suppression(model->forward(input)[0], a.conf, a.iou, a.max_det)[0].cpu();
    at::Tensor boxes = dets.clone();
    if (dets.size(0) > 0) boxes.narrow(1, 0, 4).copy_(unletterbox_boxes(dets.narrow(1, 0, 4), lb));
    at::Tensor original = decode_image(path, 0).image;
    draw_boxes(original, boxes, names, 0.0);
    const fs::path target = fs::path(out) / fs::path(path).filename();
    write_image(target.string(), original);
    std::string summary;
    std::map<int64_t, int64_t> counts;
    for (int64_t k = 0; k < boxes.size(0); ++k) ++counts[static_cast<int64_t>(boxes[k][5].item<double>())];
    for (const auto& [c, n] : counts) summary += fmt::format("{}{} {}", summary.empty() ? "" : ", ", n, names[c]);
    std::cout << fmt::format("{}: {}\n", path, summary.empty() ? "no detections" : summary);
    if (a.save_txt) {
      std::string text;
      const double w = static_cast<double>(lb.original_width), h = static_cast<double>(lb.original_height);
      for (int64_t k = 0; k < boxes.size(0); ++k) {
        const auto b = boxes[k];
        const double x1 = b[0].item<double>(), y1 = b[1].item<double>(), x2 = b[2].item<double>(), y2 = b[3].item<double>();
        text += fmt::format("{} {:.6f} {:.6f} {:.6f} {:.6f} {:.5f}\n", static_cast<int64_t>(b[5].item<double>()),
                            (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h, b[4].item<double>());
      }
      write_file_atomically((fs::path(out) / "labels" / (fs::path(path).stem().string() + ".txt")).string(), text);
    }
  }
  std::cout << fmt::format("results in {}\n", out);
  return 0;
}

}  // namespace

Command add_detect(CLI::App& app) {
  auto a = std::make_shared<DetectArgs>();
  auto* cmd = app.add_subcommand("detect", "draw a detector's boxes on images");
  cmd->add_option("--model", a->model, "model config or built-in name (default: the one saved with the weights)");
  cmd->add_option("--weights", a->weights, "weights (.safetensors)");
  cmd->add_option("--source", a->source, "an image or a folder of images");
  cmd->add_option("--imgsz", a->imgsz, "inference size")->capture_default_str();
  cmd->add_option("--conf", a->conf, "confidence threshold")->capture_default_str();
  cmd->add_option("--iou", a->iou, "NMS IoU threshold")->capture_default_str();
  cmd->add_option("--max-det", a->max_det, "boxes per image at most")->capture_default_str();
  cmd->add_option("--out", a->out, "output folder (default: runs/detect/exp, numbered)");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--save-txt", a->save_txt, "also write YOLO txt predictions (class x y w h conf, normalised)");
  return [a] { return run_detect(*a); };
}

}  // namespace revkit::cli
