#include "engine/predictor.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/images.h"
#include "eval/plots.h"

namespace fs = std::filesystem;

namespace revkit {
namespace {
bool looks_like_image(const fs::path& p) {
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp" || ext == ".tif" ||
         ext == ".tiff";
}
}  // namespace

std::vector<std::string> list_images(const std::string& source) {
  std::vector<std::string> images;
  if (fs::is_directory(source)) {
    for (const auto& f : fs::directory_iterator(source))
      if (f.is_regular_file() && looks_like_image(f.path())) images.push_back(f.path().string());
    std::sort(images.begin(), images.end());
    if (images.empty()) throw InputError(source, "no images in this folder");
  } else if (fs::is_regular_file(source)) {
    images.push_back(source);
  } else {
    throw InputError(source, "no such image or folder");
  }
  return images;
}

Predictor::Predictor(DetectionModel model, std::vector<std::string> names, PredictOptions options)
    : model_(std::move(model)), names_(std::move(names)), options_(options) {
  model_->to(options_.device);
  model_->eval();
  options_.imgsz = model_->checked_image_size(options_.imgsz);
  if (options_.iou < 0) options_.iou = model_->head()->defaults().predict_iou;
}

Prediction Predictor::predict(const std::string& path) {
  at::NoGradGuard no_grad;
  const LetterboxedImage lb = load_for_inference(path, options_.imgsz, model_->size_divisor());
  const at::Tensor input = lb.image.unsqueeze(0).to(options_.device).to(at::kFloat).div_(255);
  const at::Tensor dets =
      model_->head()->nms(model_->forward(input)[0], options_.conf, options_.iou, options_.max_det, false)[0].cpu();
  Prediction p{path, dets.clone(), lb.shape.width, lb.shape.height};
  // Whole pixels, as detect.py draws and writes them.
  if (dets.size(0) > 0) p.boxes.narrow(1, 0, 4).copy_(to_original_pixels(dets.narrow(1, 0, 4), lb.shape).round());
  return p;
}

std::string Predictor::summary(const Prediction& p) const {
  std::map<int64_t, int64_t> counts;
  for (int64_t k = 0; k < p.boxes.size(0); ++k) ++counts[static_cast<int64_t>(p.boxes[k][5].item<double>())];
  std::string text;
  for (const auto& [c, n] : counts) text += fmt::format("{}{} {}", text.empty() ? "" : ", ", n, names_.at(c));
  return text.empty() ? "no detections" : text;
}

void Predictor::save_image(const Prediction& p, const std::string& folder) const {
  at::Tensor original = decode_image(p.path, 0).image;
  draw_boxes(original, p.boxes, names_, 0.0);
  write_image((fs::path(folder) / fs::path(p.path).filename()).string(), original);
}

void Predictor::save_txt(const Prediction& p, const std::string& folder) const {
  std::string text;
  const double w = static_cast<double>(p.width), h = static_cast<double>(p.height);
  const at::Tensor b = p.boxes.to(at::kDouble);
  for (int64_t k = 0; k < b.size(0); ++k) {
    const double x1 = b[k][0].item<double>(), y1 = b[k][1].item<double>(), x2 = b[k][2].item<double>(),
                 y2 = b[k][3].item<double>();
    text += fmt::format("{} {:.6f} {:.6f} {:.6f} {:.6f} {:.5f}\n", static_cast<int64_t>(b[k][5].item<double>()),
                        (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h, b[k][4].item<double>());
  }
  write_file_atomically((fs::path(folder) / (fs::path(p.path).stem().string() + ".txt")).string(), text);
}

}  // namespace revkit
