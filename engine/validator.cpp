#include "engine/validator.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <chrono>

#include "core/autocast_state.h"
#include "engine/amp.h"
#include "engine/distributed.h"

namespace revkit {

ValidationResult validate(DetectionModelImpl& model, DetectionLoader& loader, const ValidationOptions& options,
                          const BatchCallback& on_batch, Distributed* dist) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = model.is_training();
  model.eval();
  at::NoGradGuard no_grad;
  ValidationResult result;
  MetricsAccumulator metrics(options.ap_rule);
  const DetectionHead& head = *model.head();
  const HeadDefaults defaults = head.defaults();
  const double iou = options.iou >= 0 ? options.iou : defaults.val_iou;
  LossContext loss_context;
  loss_context.imgsz = loader.options().imgsz;
  int64_t batches = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    const bool async = options.device.is_cuda() && batch->images.is_pinned();
    at::Tensor images = batch->images.to(options.device, /*non_blocking=*/async).to(at::kFloat).div_(255);
    std::vector<at::Tensor> raw;
    {
      AutocastStateGuard autocast(AmpPolicy::choose(options.amp, options.device).autocast());
      raw = model.forward_raw(images);
    }
    for (auto& r : raw) r = r.to(at::kFloat);
    const at::Tensor targets = batch->targets.to(options.device, /*non_blocking=*/async);
    if (options.compute_loss) {
      const HeadLoss loss = head.loss(raw, targets, loss_context);
      for (int k = 0; k < 3; ++k) result.losses[k] += loss.parts[k];
    }
    const auto kept = head.nms(head.decode(raw), options.conf, iou, options.max_det, /*multi_label=*/true);
    std::vector<at::Tensor> per_image;
    const double height = static_cast<double>(images.size(2)), width = static_cast<double>(images.size(3));
    for (size_t i = 0; i < kept.size(); ++i) {
      const at::Tensor dets = kept[i].cpu();
      const ImageShape& shape = batch->shapes[i];
      const at::Tensor rows = batch->targets.index({batch->targets.select(1, 0) == static_cast<double>(i)});
      at::Tensor labels = at::zeros({0, 5});
      if (rows.size(0) > 0) {
        const at::Tensor sides = at::tensor({width, height}, at::kFloat);
        at::Tensor xy = rows.narrow(1, 2, 2) * sides, half = rows.narrow(1, 4, 2) * sides / 2;
        labels = at::cat({rows.narrow(1, 1, 1), to_original_pixels(at::cat({xy - half, xy + half}, 1), shape)}, 1);
      }
      // Scored in the original image's pixels, as val.py scores them (Ultralytics 8: without clipping).
      at::Tensor original = dets.clone();
      original.narrow(1, 0, 4).copy_(to_original_pixels(dets.narrow(1, 0, 4), shape, defaults.clip_val_boxes));
      metrics.add(original, labels);
      result.instances += labels.size(0);
      per_image.push_back(dets);
      if (options.keep_detections) result.detections.push_back({batch->paths[i], original});
    }
    if (on_batch) on_batch(*batch, per_image);
    ++batches;
  }
  if (dist) {
    at::Tensor sums = at::tensor({result.losses[0], result.losses[1], result.losses[2], static_cast<double>(batches),
                                  static_cast<double>(result.instances)},
                                 at::kDouble);
    dist->all_reduce_sum({sums});
    for (int k = 0; k < 3; ++k) result.losses[k] = sums[k].item<double>();
    batches = static_cast<int64_t>(sums[3].item<double>());
    result.instances = static_cast<int64_t>(sums[4].item<double>());
    MetricsAccumulator pooled(options.ap_rule);
    for (const auto& bytes : dist->all_gather_bytes(metrics.serialize())) pooled.merge(bytes);
    metrics = std::move(pooled);
  }
  if (batches > 0)
    for (double& l : result.losses) l /= static_cast<double>(batches);
  result.images = metrics.images();
  result.metrics = metrics.compute();
  model.train(was_training);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void print_validation(std::ostream& out, const ValidationResult& v, const std::vector<std::string>& names,
                      bool per_class) {
  const auto& m = v.metrics;
  const char* row = "{:>22} {:>10} {:>10} {:>10.3f} {:>10.3f} {:>10.3f} {:>10.3f}\n";
  out << fmt::format("{:>22} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "Class", "Images", "Instances", "P", "R",
                     "mAP50", "mAP50-95");
  out << fmt::format(fmt::runtime(row), "all", v.images, v.instances, m.mp, m.mr, m.map50, m.map50_95);
  for (size_t k = 0; per_class && k < m.classes.size(); ++k) {
    const int64_t c = m.classes[k];
    const std::string name = c >= 0 && c < static_cast<int64_t>(names.size()) ? names[c] : std::to_string(c);
    out << fmt::format(fmt::runtime(row), name, "", m.labels_per_class[k], m.precision[k], m.recall[k], m.ap50[k],
                       m.ap50_95[k]);
  }
  out << std::flush;
}

}  // namespace revkit
