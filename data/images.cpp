#include "data/images.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/image_integrity.h"

namespace revkit {

namespace {

cv::Mat read_bgr(const std::string& path) {
  // OpenCV's warnings ("[ WARN:0@...] imread_(...): can't open/read file") would come beside revkit's own message
  // for the same file, one per image and epoch: only its errors are let through.
  static const bool quiet = [] {
    cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
    return true;
  }();
  (void)quiet;
  // OpenCV decodes a file cut short as a picture filled with grey, with a warning at most.
  if (const std::string problem = truncated_image_problem(path); !problem.empty()) throw InputError(path, problem);
  cv::Mat bgr;
  try {
    bgr = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {  // what() adds OpenCV's version, source file and function to the reason
    std::string reason = e.err;
    std::replace(reason.begin(), reason.end(), '\n', ' ');
    reason.resize(reason.find_last_not_of(' ') + 1);
    throw InputError(path, fmt::format("cannot decode image: {}{}", reason, e.func.empty() ? "" : " in " + e.func));
  }
  if (bgr.empty()) throw InputError(path, "cannot decode image (missing, truncated or not an image)");
  return bgr;
}

// `bgr` resized to w x h with `interpolation`, as an [h, w, 3] RGB tensor.
at::Tensor resized_rgb(const cv::Mat& bgr, int w, int h, int interpolation) {
  at::Tensor image = at::empty({h, w, 3}, at::kByte);
  cv::Mat rgb(h, w, CV_8UC3, image.data_ptr());
  if (w == bgr.cols && h == bgr.rows) {
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  } else {
    cv::Mat resized;
    cv::resize(bgr, resized, cv::Size(w, h), 0, 0, interpolation);
    cv::cvtColor(resized, rgb, cv::COLOR_BGR2RGB);
  }
  return image;
}

// An [h, w, 3] picture centred on a grey `height` x `width` canvas as Ultralytics' letterbox places it: at
// (round(pad_x - 0.1), round(pad_y - 0.1)) with pad = (canvas - picture) / 2. Returns [3, height, width].
at::Tensor on_canvas(const at::Tensor& picture, int64_t height, int64_t width) {
  const int64_t h = picture.size(0), w = picture.size(1);
  TORCH_CHECK(h <= height && w <= width, "letterbox: picture larger than the canvas");
  const int64_t left = static_cast<int64_t>(std::nearbyint((width - w) / 2.0 - 0.1));
  const int64_t top = static_cast<int64_t>(std::nearbyint((height - h) / 2.0 - 0.1));
  at::Tensor canvas = at::full({height, width, 3}, 114, at::kByte);
  canvas.narrow(0, top, h).narrow(1, left, w).copy_(picture);
  return canvas.permute({2, 0, 1}).contiguous();
}

}  // namespace

DecodedImage decode_image(const std::string& path, int64_t long_side, bool shrink_with_area) {
  const cv::Mat bgr = read_bgr(path);
  DecodedImage out;
  out.original_width = bgr.cols;
  out.original_height = bgr.rows;
  out.scale = long_side > 0 ? static_cast<double>(long_side) / std::max(bgr.cols, bgr.rows) : 1.0;
  // Ultralytics' load_image rounds up (math.ceil); the long side stays `long_side` whatever the float error.
  auto side = [&](int original) {
    const int s = std::max(1, static_cast<int>(std::ceil(original * out.scale)));
    return long_side > 0 ? std::min(s, static_cast<int>(long_side)) : s;
  };
  out.image = resized_rgb(bgr, side(bgr.cols), side(bgr.rows),
                          out.scale < 1 && shrink_with_area ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

LetterboxedImage load_for_inference(const std::string& path, int64_t size, int64_t stride) {
  TORCH_CHECK(size > 0 && stride > 0, "load_for_inference: size and stride must be positive");
  const cv::Mat bgr = read_bgr(path);
  const double r = std::min(static_cast<double>(size) / bgr.rows, static_cast<double>(size) / bgr.cols);
  // Python's round() (half to even), as letterbox computes new_unpad; never 0 or beyond the square.
  auto side = [&](int original) {
    return static_cast<int>(std::clamp<double>(std::nearbyint(original * r), 1.0, static_cast<double>(size)));
  };
  const int w = side(bgr.cols), h = side(bgr.rows);
  auto padded = [&](int64_t s) { return s + (size - s) % stride; };  // the padding np.mod(size - s, stride)
  const int64_t width = padded(w), height = padded(h);
  LetterboxedImage out;
  out.image = on_canvas(resized_rgb(bgr, w, h, cv::INTER_LINEAR), height, width);
  out.labels = at::zeros({0, 5});
  // detect.py's scale_boxes works from the shapes alone: gain = min of the canvas-to-original ratios.
  const double gain = std::min(static_cast<double>(height) / bgr.rows, static_cast<double>(width) / bgr.cols);
  out.shape = ImageShape{gain, (width - bgr.cols * gain) / 2, (height - bgr.rows * gain) / 2, bgr.cols, bgr.rows};
  return out;
}

at::Tensor to_pixel_corners(const at::Tensor& rows, double width, double height) {
  at::Tensor out = rows.to(at::kFloat).clone();
  if (out.size(0) == 0) return at::zeros({0, 5});
  at::Tensor x = rows.select(1, 1), y = rows.select(1, 2), w = rows.select(1, 3), h = rows.select(1, 4);
  out.select(1, 1).copy_((x - w / 2) * width);
  out.select(1, 2).copy_((y - h / 2) * height);
  out.select(1, 3).copy_((x + w / 2) * width);
  out.select(1, 4).copy_((y + h / 2) * height);
  return out;
}

at::Tensor to_normalised_centres(const at::Tensor& boxes, double width, double height) {
  if (boxes.size(0) == 0) return at::zeros({0, 5});
  const at::Tensor sides = at::tensor({width, height, width, height}, boxes.options());
  at::Tensor c = at::min(boxes.narrow(1, 1, 4).clamp_min(0), sides - 1e-3) / sides;
  at::Tensor x1 = c.select(1, 0), y1 = c.select(1, 1), x2 = c.select(1, 2), y2 = c.select(1, 3);
  return at::stack({boxes.select(1, 0), (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1}, 1);
}

LetterboxedImage load_letterboxed(const std::string& path, int64_t long_side, int64_t height, int64_t width,
                                  const at::Tensor& labels, LetterboxRule rule) {
  const bool v8 = rule == LetterboxRule::Ultralytics8;
  const DecodedImage d = decode_image(path, long_side, /*shrink_with_area=*/!v8);
  const int64_t h = d.image.size(0), w = d.image.size(1);
  LetterboxedImage out;
  out.image = on_canvas(d.image, height, width);
  auto pad = [v8](int64_t canvas, int64_t picture) {
    const double half = static_cast<double>(canvas - picture) / 2.0;
    return v8 ? std::round(half - 0.1) : half;  // where on_canvas puts the picture, or val.py's float
  };
  out.shape = ImageShape{static_cast<double>(h) / d.original_height, pad(width, w), pad(height, h), d.original_width,
                         d.original_height};
  at::Tensor boxes = to_pixel_corners(labels, static_cast<double>(w), static_cast<double>(h));
  if (boxes.size(0) > 0) {
    const double p[4] = {out.shape.pad_x, out.shape.pad_y, out.shape.pad_x, out.shape.pad_y};
    boxes.narrow(1, 1, 4).add_(at::tensor(std::vector<double>(p, p + 4), boxes.options()));
  }
  out.labels = to_normalised_centres(boxes, static_cast<double>(width), static_cast<double>(height));
  return out;
}

at::Tensor to_original_pixels(const at::Tensor& boxes, const ImageShape& shape, bool clip) {
  at::Tensor out = boxes.to(at::kFloat).clone();
  const double pad[2] = {shape.pad_x, shape.pad_y};
  const double limit[2] = {static_cast<double>(shape.width), static_cast<double>(shape.height)};
  for (int k = 0; k < 4; ++k) {
    at::Tensor side = out.select(1, k).sub_(pad[k % 2]).div_(shape.gain);
    if (clip) side.clamp_(0, limit[k % 2]);
  }
  return out;
}

}  // namespace revkit
