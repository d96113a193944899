// revkit val: precision, recall and mAP of trained weights on a dataset split; COCO-format detections on request.
#include <fmt/format.h>

#include <iostream>

#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "core/logging.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "engine/validator.h"
#include "models/weights_file.h"

namespace revkit::cli {
namespace {

struct ValArgs {
  std::string model, weights, data, split = "val", save_json, device = "cpu", metrics = "coco";
  int64_t imgsz = 640, batch = 32, workers = 0;
  double conf = 0.001, iou = -1;
  bool amp = false, strict = false, square = false;
};

int run_val(const ValArgs& a) {
  if (a.weights.empty() || a.data.empty()) throw InputError("val needs --weights and --data");
  // The device first: loading the weights asks LibTorch about CUDA, whose library must be loaded before, when wanted.
  const c10::Device device = parse_device(a.device);
  check_image_size_option(a.imgsz);
  if (a.batch <= 0) throw InputError(fmt::format("--batch must be positive, got {}", a.batch));
  check_loader_workers(a.workers);
  if (!(a.conf >= 0 && a.conf <= 1)) throw InputError(fmt::format("--conf must be between 0 and 1, got {}", a.conf));
  if (a.iou != -1 && !(a.iou >= 0 && a.iou <= 1))
    throw InputError(fmt::format("--iou must be between 0 and 1 (or -1, the model's default), got {}", a.iou));
  ApRule rule = parse_ap_rule(a.metrics);
  const DataConfig data = load_data_config(a.data);
  std::vector<std::string> names;
  DetectionModel model = load_detector(a.model, a.weights, &names);
  if (model->num_classes() != static_cast<int64_t>(data.names.size()))
    throw InputError(a.weights,
                     fmt::format("{} classes, but {} names {}", model->num_classes(), a.data, data.names.size()));
  const auto& split = a.split == "train" ? data.train : a.split == "test" ? data.test : data.val;
  if (split.empty()) throw InputError(a.data, fmt::format("no '{}' split", a.split));
  DatasetIndex index = index_split(split, model->num_classes(), a.strict, a.data);
  for (const auto& d : drop_unreadable_images(index, a.strict, std::max<int64_t>(1, a.workers)))
    logger()->warn("{} (skipped)", d);
  warn_about_labels(index, a.data, a.split);
  const int64_t imgsz = model->checked_image_size(a.imgsz);
  LoaderOptions lo;
  lo.imgsz = imgsz;
  lo.batch = a.batch;
  lo.workers = a.workers;
  lo.rect = !a.square;
  const HeadDefaults family = model->head()->defaults();
  lo.letterbox = family.ultralytics8_letterbox ? LetterboxRule::Ultralytics8 : LetterboxRule::Yolov5;
  lo.stride = model->size_divisor();
  lo.pin_memory = device.is_cuda();
  DetectionLoader loader(index, lo);
  ValidationOptions vo;
  vo.conf = a.conf;
  vo.iou = a.iou;
  vo.amp = a.amp;
  // "ultralytics": the rule of the model's own Ultralytics validator.
  if (a.metrics == "ultralytics" && family.greedy_val_matching) rule = ApRule::Ultralytics8;
  vo.ap_rule = rule;
  vo.device = device;
  vo.keep_detections = !a.save_json.empty();
  model->to(vo.device);
  const ValidationResult v = validate(*model, loader, vo);
  print_validation(std::cout, v, data.names, /*per_class=*/true);
  std::cout << fmt::format("{:.1f} ms per image\n", v.seconds * 1000 / std::max<int64_t>(1, v.images));
  // The two numbers in full, with how they were computed (scripts read this line).
  std::cout << fmt::format("mAP@0.5 {:.5f}, mAP@0.5:0.95 {:.5f} ({} rule, {})\n", v.metrics.map50, v.metrics.map50_95,
                           rule == ApRule::Ultralytics8 ? "ultralytics8" : a.metrics,
                           a.square ? "square letterbox" : "rect batches");
  if (!a.save_json.empty()) {
    const bool coco = is_coco_names(data.names);
    write_coco_detections(a.save_json, v.detections, coco);
    std::cout << fmt::format("detections written to {} ({} category ids)\n", a.save_json,
                             coco ? "COCO" : "class index");
  }
  return 0;
}

}  // namespace

Command add_val(CLI::App& app) {
  auto a = std::make_shared<ValArgs>();
  auto* cmd = app.add_subcommand("val", "precision, recall and mAP of trained weights on a dataset");
  cmd->add_option("--model", a->model, "model config or built-in name (default: the one saved with the weights)");
  cmd->add_option("--weights", a->weights, "weights (.safetensors, or a PyTorch .pt/.pth checkpoint)");
  cmd->add_option("--data", a->data, "data yaml");
  cmd->add_option("--split", a->split, "train, val or test")
      ->check(CLI::IsMember({"train", "val", "test"}))
      ->capture_default_str();
  cmd->add_option("--imgsz", a->imgsz, "image size")->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")->capture_default_str();
  cmd->add_option("--workers", a->workers, "loader threads")->capture_default_str();
  cmd->add_option("--conf", a->conf, "confidence threshold")->capture_default_str();
  cmd->add_option("--iou", a->iou, "NMS IoU threshold (-1: the model's default, YOLOv5 0.6, YOLOv8 0.7)")
      ->capture_default_str();
  cmd->add_option("--save-json", a->save_json, "write COCO-format detections to this file");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--metrics", a->metrics,
                  "coco: pycocotools' matching and 101-point AP; yolov5: YOLOv5 val.py's matching and AP; "
                  "ultralytics8: Ultralytics 8.4's; ultralytics: the one of the model's family")
      ->capture_default_str();
  cmd->add_flag("--square", a->square, "letterbox every image to an imgsz square (default: rect batches, as val.py)");
  cmd->add_flag("--amp", a->amp, "mixed precision");
  cmd->add_flag("--strict", a->strict, "a bad image or label row is an error");
  return [a] { return run_val(*a); };
}

}  // namespace revkit::cli
