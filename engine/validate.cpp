#include "engine/validate.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/autocast_state.h"
#include "engine/distributed.h"
#include "heads/detect.h"
#include "heads/detect_loss.h"

namespace revkit {

namespace {
const std::vector<std::string>& coco_names() {
  static const std::vector<std::string> names = {
      "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
      "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
      "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
      "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
      "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
      "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
      "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
      "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
      "hair drier", "toothbrush"};
  return names;
}

AutocastState autocast_for(bool amp, c10::Device device) {
  AutocastState s = AutocastState::current();
  if (amp && device.is_cpu()) s.cpu_enabled = true, s.cpu_dtype = at::kBFloat16;
  if (amp && device.is_cuda()) s.cuda_enabled = true, s.cuda_dtype = at::kHalf;
  return s;
}
}  // namespace

bool is_coco_names(const std::vector<std::string>& names) { return names == coco_names(); }

int64_t coco80_to_91(int64_t cls) {
  static const int64_t ids[80] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                  22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
                                  46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
                                  67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};
  TORCH_CHECK(cls >= 0 && cls < 80, "coco80_to_91: class ", cls, " out of range");
  return ids[cls];
}

ValidationResult validate(DetectionModelImpl& model, DetectionLoader& loader, const ValidationOptions& options,
                          const BatchCallback& on_batch, Distributed* dist) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = model.is_training();
  model.eval();
  at::NoGradGuard no_grad;
  ValidationResult result;
  MetricsAccumulator metrics;
  const DetectImpl& head = *model.head();
  const int64_t size = loader.options().imgsz;
  const DetectLossOptions loss_options = DetectLossOptions::scaled(head.nl, head.nc, size);
  int64_t batches = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    at::Tensor images = batch->images.to(options.device).to(at::kFloat).div_(255);
    std::vector<at::Tensor> raw;
    {
      AutocastStateGuard autocast(autocast_for(options.amp, options.device));
      raw = model.forward_raw(images);
    }
    for (auto& r : raw) r = r.to(at::kFloat);
    const at::Tensor targets = batch->targets.to(options.device);
    if (options.compute_loss) {
      const DetectLoss loss = detect_loss(head, raw, targets, loss_options);
      result.box += loss.box, result.obj += loss.obj, result.cls += loss.cls;
    }
    const auto kept = non_max_suppression(head.decode(raw), options.conf, options.iou, options.max_det);
    std::vector<at::Tensor> per_image;
    for (size_t i = 0; i < kept.size(); ++i) {
      const at::Tensor dets = kept[i].cpu();
      const at::Tensor rows = batch->targets.index({batch->targets.select(1, 0) == static_cast<double>(i)});
      at::Tensor labels = at::zeros({0, 5});
      if (rows.size(0) > 0) {
        at::Tensor xy = rows.narrow(1, 2, 2), half = rows.narrow(1, 4, 2) / 2;
        labels = at::cat({rows.narrow(1, 1, 1), (xy - half) * size, (xy + half) * size}, 1);
      }
      metrics.add(dets, labels);
      result.instances += labels.size(0);
      per_image.push_back(dets);
      if (options.keep_detections) {
        const ImageShape& s = batch->shapes[i];
        at::Tensor boxes = dets.clone();
        const double pad[4] = {static_cast<double>(s.pad_x), static_cast<double>(s.pad_y), static_cast<double>(s.pad_x),
                               static_cast<double>(s.pad_y)};
        const double limit[4] = {static_cast<double>(s.width), static_cast<double>(s.height), static_cast<double>(s.width),
                                 static_cast<double>(s.height)};
        for (int k = 0; k < 4; ++k) boxes.select(1, k).sub_(pad[k]).div_(s.scale).clamp_(0, limit[k]);
        result.detections.push_back({batch->paths[i], boxes});
      }
    }
    if (on_batch) on_batch(*batch, per_image);
    ++batches;
  }
  if (dist) {
    at::Tensor sums = at::tensor({result.box, result.obj, result.cls, static_cast<double>(batches),
                                  static_cast<double>(result.instances)}, at::kDouble);
    dist->all_reduce_sum({sums});
    result.box = sums[0].item<double>(), result.obj = sums[1].item<double>(), result.cls = sums[2].item<double>();
    batches = static_cast<int64_t>(sums[3].item<double>());
    result.instances = static_cast<int64_t>(sums[4].item<double>());
    MetricsAccumulator pooled;
    for (const auto& bytes : dist->all_gather_bytes(metrics.serialize())) pooled.merge(bytes);
    metrics = std::move(pooled);
  }
  if (batches > 0) result.box /= batches, result.obj /= batches, result.cls /= batches;
  result.images = metrics.images();
  result.metrics = metrics.compute();
  model.train(was_training);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void print_validation(std::ostream& out, const ValidationResult& v, const std::vector<std::string>& names, bool per_class) {
  const auto& m = v.metrics;
  const char* row = "{:>22} {:>10} {:>10} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f}\n";
  out << fmt::format("{:>22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "Class", "Images", "Instances", "P", "R",
                     "mAP50", "mAP50-95");
  out << fmt::format(fmt::runtime(row), "all", v.images, v.instances, m.mp, m.mr, m.map50, m.map50_95);
  for (size_t k = 0; per_class && k < m.classes.size(); ++k) {
    const int64_t c = m.classes[k];
    const std::string name = c >= 0 && c < static_cast<int64_t>(names.size()) ? names[c] : std::to_string(c);
    out << fmt::format(fmt::runtime(row), name, "", m.labels_per_class[k], m.precision[k], m.recall[k], m.ap50[k], m.ap50_95[k]);
  }
  out << std::flush;
}

void write_coco_detections(const std::string& path, const std::vector<ImageDetections>& detections, bool coco_ids) {
  nlohmann::json out = nlohmann::json::array();
  auto round_to = [](double v, double unit) { return std::round(v / unit) * unit; };
  for (const auto& image : detections) {
    const std::string stem = std::filesystem::path(image.path).stem().string();
    nlohmann::json id = stem;
    if (!stem.empty() && stem.find_first_not_of("0123456789") == std::string::npos) id = std::stoll(stem);
    const at::Tensor b = image.boxes.to(at::kDouble);
    for (int64_t k = 0; k < b.size(0); ++k) {
      const double x1 = b[k][0].item<double>(), y1 = b[k][1].item<double>(), x2 = b[k][2].item<double>(),
                   y2 = b[k][3].item<double>();
      const auto cls = static_cast<int64_t>(b[k][5].item<double>());
      out.push_back({{"image_id", id},
                     {"category_id", coco_ids ? coco80_to_91(cls) : cls},
                     {"bbox", {round_to(x1, 1e-3), round_to(y1, 1e-3), round_to(x2 - x1, 1e-3), round_to(y2 - y1, 1e-3)}},
                     {"score", round_to(b[k][4].item<double>(), 1e-5)}});
    }
  }
  write_file_atomically(path, out.dump());
}

}  // namespace revkit
