#include "data/images.h"

#include <ATen/ATen.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace revkit {

std::string truncated_image_problem(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";  // the decoder reports a missing file
  const std::streamoff size = in.tellg();
  unsigned char head[8] = {}, tail[8] = {};
  if (size < 16) return "";
  in.seekg(0);
  in.read(reinterpret_cast<char*>(head), 8);
  in.seekg(size - 8);
  in.read(reinterpret_cast<char*>(tail), 8);
  if (!in) return "";
  const bool jpeg = head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF;
  const bool png = std::memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0;
  // A JPEG ends with its end-of-image marker (FF D9), as Ultralytics checks; a PNG with its IEND chunk and CRC.
  if (jpeg && !(tail[6] == 0xFF && tail[7] == 0xD9)) return "truncated JPEG (no end-of-image marker)";
  if (png && std::memcmp(tail, "IEND\xae\x42\x60\x82", 8) != 0) return "truncated PNG (no IEND chunk)";
  return "";
}

DecodedImage decode_image(const std::string& path, int64_t long_side) {
  // OpenCV decodes a file cut short as a picture filled with grey, with a warning at most.
  if (const std::string problem = truncated_image_problem(path); !problem.empty()) throw InputError(path, problem);
  cv::Mat bgr;
  try {
    bgr = cv::imread(path, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw InputError(path, std::string("cannot decode image: ") + e.what());
  }
  if (bgr.empty()) throw InputError(path, "cannot decode image (missing, truncated or not an image)");
  DecodedImage out;
  out.original_width = bgr.cols;
  out.original_height = bgr.rows;
  out.scale = long_side > 0 ? static_cast<double>(long_side) / std::max(bgr.cols, bgr.rows) : 1.0;
  // Ultralytics' load_image rounds up (math.ceil); the long side stays `long_side` whatever the float error.
  auto side = [&](int original) {
    const int s = std::max(1, static_cast<int>(std::ceil(original * out.scale)));
    return long_side > 0 ? std::min(s, static_cast<int>(long_side)) : s;
  };
  const int w = side(bgr.cols), h = side(bgr.rows);
  out.image = at::empty({h, w, 3}, at::kByte);
  cv::Mat rgb(h, w, CV_8UC3, out.image.data_ptr());
  if (w == bgr.cols && h == bgr.rows) {
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  } else {
    cv::Mat resized;
    cv::resize(bgr, resized, cv::Size(w, h), 0, 0, out.scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    cv::cvtColor(resized, rgb, cv::COLOR_BGR2RGB);
  }
  return out;
}

LetterboxedImage load_letterboxed(const std::string& path, int64_t size, const at::Tensor& labels) {
  DecodedImage decoded = decode_image(path, size);
  LetterboxedImage out;
  out.original_width = decoded.original_width;
  out.original_height = decoded.original_height;
  out.scale = decoded.scale;
  const int64_t h = decoded.image.size(0), w = decoded.image.size(1);
  out.pad_x = (size - w) / 2;
  out.pad_y = (size - h) / 2;
  at::Tensor canvas = at::full({size, size, 3}, 114, at::kByte);
  canvas.narrow(0, out.pad_y, h).narrow(1, out.pad_x, w).copy_(decoded.image);
  out.image = canvas.permute({2, 0, 1}).contiguous();

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
