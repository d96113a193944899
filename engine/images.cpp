#include "engine/images.h"

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>

#include "core/error.h"

namespace revkit {

LetterboxedImage load_letterboxed(const std::string& path, int64_t size, const at::Tensor& labels) {
  cv::Mat bgr;
  try {
    bgr = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw InputError(path, std::string("cannot decode image: ") + e.what());
  }
  if (bgr.empty()) throw InputError(path, "cannot decode image (missing, truncated or not an image)");
  LetterboxedImage out;
  out.original_width = bgr.cols;
  out.original_height = bgr.rows;
  out.scale = std::min(static_cast<double>(size) / bgr.cols, static_cast<double>(size) / bgr.rows);
  const int w = static_cast<int>(std::round(bgr.cols * out.scale)), h = static_cast<int>(std::round(bgr.rows * out.scale));
  cv::Mat resized;
  cv::resize(bgr, resized, cv::Size(w, h), 0, 0, out.scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  out.pad_x = (size - w) / 2;
  out.pad_y = (size - h) / 2;
  cv::Mat canvas(static_cast<int>(size), static_cast<int>(size), CV_8UC3, cv::Scalar(114, 114, 114));
  resized.copyTo(canvas(cv::Rect(static_cast<int>(out.pad_x), static_cast<int>(out.pad_y), w, h)));
  cv::cvtColor(canvas, canvas, cv::COLOR_BGR2RGB);
  out.image = at::from_blob(canvas.data, {size, size, 3}, at::kByte).permute({2, 0, 1}).clone();

  at::Tensor l = labels.to(at::kFloat).clone();
  if (l.size(0) > 0) {
    const double sx = w / static_cast<double>(size), sy = h / static_cast<double>(size);
    l.select(1, 1).mul_(sx).add_(static_cast<double>(out.pad_x) / size);
    l.select(1, 2).mul_(sy).add_(static_cast<double>(out.pad_y) / size);
    l.select(1, 3).mul_(sx);
    l.select(1, 4).mul_(sy);
  }
  out.labels = l;
  return out;
}

at::Tensor unletterbox_boxes(const at::Tensor& boxes, const LetterboxedImage& info) {
  at::Tensor b = boxes.clone();
  b.select(1, 0).sub_(static_cast<double>(info.pad_x)).div_(info.scale).clamp_(0, info.original_width);
  b.select(1, 2).sub_(static_cast<double>(info.pad_x)).div_(info.scale).clamp_(0, info.original_width);
  b.select(1, 1).sub_(static_cast<double>(info.pad_y)).div_(info.scale).clamp_(0, info.original_height);
  b.select(1, 3).sub_(static_cast<double>(info.pad_y)).div_(info.scale).clamp_(0, info.original_height);
  return b;
}

}  // namespace revkit
