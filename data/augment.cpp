#include "data/augment.h"

#include <ATen/ATen.h>
#include <opencv2/imgproc.hpp>

#include <cmath>

namespace revkit {
namespace {

// A cv::Mat over a contiguous [H, W, 3] uint8 tensor, sharing its memory.
cv::Mat as_mat(const at::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && image.size(2) == 3 && image.scalar_type() == at::kByte && image.is_contiguous(),
              "expected a contiguous [H, W, 3] uint8 image");
  return cv::Mat(static_cast<int>(image.size(0)), static_cast<int>(image.size(1)), CV_8UC3, image.data_ptr());
}

at::Tensor grey_canvas(int64_t height, int64_t width) { return at::full({height, width, 3}, 114, at::kByte); }

double uniform(AugmentRng& rng, double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }

}  // namespace

ImageBoxes pad_to_square(const ImageBoxes& in, int64_t size, int64_t* pad_x, int64_t* pad_y) {
  const int64_t h = in.image.size(0), w = in.image.size(1);
  TORCH_CHECK(h <= size && w <= size, "pad_to_square: picture larger than the square");
  const int64_t px = (size - w) / 2, py = (size - h) / 2;
  ImageBoxes out{grey_canvas(size, size), in.boxes.clone()};
  out.image.narrow(0, py, h).narrow(1, px, w).copy_(in.image);
  if (out.boxes.size(0) > 0) out.boxes.narrow(1, 1, 4).add_(at::tensor({px, py, px, py}, out.boxes.options()));
  if (pad_x) *pad_x = px;
  if (pad_y) *pad_y = py;
  return out;
}

ImageBoxes mosaic4(const std::array<ImageBoxes, 4>& parts, int64_t size, AugmentRng& rng) {
  const int64_t s = size, side = 2 * s;
  const auto xc = static_cast<int64_t>(uniform(rng, s / 2.0, 1.5 * s));
  const auto yc = static_cast<int64_t>(uniform(rng, s / 2.0, 1.5 * s));
  ImageBoxes out{grey_canvas(side, side), {}};
  std::vector<at::Tensor> boxes;
  for (int i = 0; i < 4; ++i) {
    const at::Tensor& img = parts[i].image;
    const int64_t h = img.size(0), w = img.size(1);
    int64_t x1a, y1a, x2a, y2a, x1b, y1b, x2b, y2b;  // a: on the canvas, b: in the part
    if (i == 0) {
      x1a = std::max<int64_t>(xc - w, 0), y1a = std::max<int64_t>(yc - h, 0), x2a = xc, y2a = yc;
      x1b = w - (x2a - x1a), y1b = h - (y2a - y1a), x2b = w, y2b = h;
    } else if (i == 1) {
      x1a = xc, y1a = std::max<int64_t>(yc - h, 0), x2a = std::min(xc + w, side), y2a = yc;
      x1b = 0, y1b = h - (y2a - y1a), x2b = std::min(w, x2a - x1a), y2b = h;
    } else if (i == 2) {
      x1a = std::max<int64_t>(xc - w, 0), y1a = yc, x2a = xc, y2a = std::min(side, yc + h);
      x1b = w - (x2a - x1a), y1b = 0, x2b = w, y2b = std::min(y2a - y1a, h);
    } else {
      x1a = xc, y1a = yc, x2a = std::min(xc + w, side), y2a = std::min(side, yc + h);
      x1b = 0, y1b = 0, x2b = std::min(w, x2a - x1a), y2b = std::min(y2a - y1a, h);
    }
    if (x2a > x1a && y2a > y1a)
      out.image.narrow(0, y1a, y2a - y1a)
          .narrow(1, x1a, x2a - x1a)
          .copy_(img.narrow(0, y1b, y2b - y1b).narrow(1, x1b, x2b - x1b));
    at::Tensor b = parts[i].boxes.to(at::kFloat).clone();
    const double padw = static_cast<double>(x1a - x1b), padh = static_cast<double>(y1a - y1b);
    if (b.size(0) > 0) b.narrow(1, 1, 4).add_(at::tensor({padw, padh, padw, padh}, b.options()));
    boxes.push_back(b);
  }
  out.boxes = at::cat(boxes, 0);
  out.boxes.narrow(1, 1, 4).clamp_(0, static_cast<double>(side));
  return out;
}

at::Tensor box_candidates(const at::Tensor& before, const at::Tensor& after, double area_fraction) {
  const double eps = 1e-16;
  at::Tensor w1 = before.select(1, 2) - before.select(1, 0), h1 = before.select(1, 3) - before.select(1, 1);
  at::Tensor w2 = after.select(1, 2) - after.select(1, 0), h2 = after.select(1, 3) - after.select(1, 1);
  at::Tensor aspect = at::maximum(w2 / (h2 + eps), h2 / (w2 + eps));
  return (w2 > 2) & (h2 > 2) & (w2 * h2 / (w1 * h1 + eps) > area_fraction) & (aspect < 100);
}

ImageBoxes random_affine(const ImageBoxes& in, int64_t out_size, double translate, double scale, AugmentRng& rng) {
  const double in_w = static_cast<double>(in.image.size(1)), in_h = static_cast<double>(in.image.size(0));
  const double s = uniform(rng, 1 - scale, 1 + scale);
  const double tx = uniform(rng, 0.5 - translate, 0.5 + translate) * out_size;
  const double ty = uniform(rng, 0.5 - translate, 0.5 + translate) * out_size;
  // p -> s (p - centre) + t
  const double m[6] = {s, 0, tx - s * in_w / 2, 0, s, ty - s * in_h / 2};
  ImageBoxes out{grey_canvas(out_size, out_size), {}};
  cv::Mat dst = as_mat(out.image);
  cv::warpAffine(as_mat(in.image.contiguous()), dst, cv::Mat(2, 3, CV_64F, const_cast<double*>(m)),
                 cv::Size(static_cast<int>(out_size), static_cast<int>(out_size)), cv::INTER_LINEAR,
                 cv::BORDER_CONSTANT, cv::Scalar(114, 114, 114));
  const at::Tensor b = in.boxes.to(at::kFloat);
  if (b.size(0) == 0) {
    out.boxes = at::zeros({0, 5});
    return out;
  }
  at::Tensor corners = b.narrow(1, 1, 4);
  at::Tensor moved = corners.clone();
  moved.select(1, 0).mul_(s).add_(m[2]);
  moved.select(1, 2).mul_(s).add_(m[2]);
  moved.select(1, 1).mul_(s).add_(m[5]);
  moved.select(1, 3).mul_(s).add_(m[5]);
  moved.clamp_(0, static_cast<double>(out_size));
  const at::Tensor keep = box_candidates(corners * s, moved);
  out.boxes = at::cat({b.narrow(1, 0, 1), moved}, 1).index({keep});
  return out;
}

void augment_hsv(at::Tensor& image, double hgain, double sgain, double vgain, AugmentRng& rng) {
  if (hgain == 0 && sgain == 0 && vgain == 0) return;
  const double rh = uniform(rng, -1, 1) * hgain + 1, rs = uniform(rng, -1, 1) * sgain + 1,
               rv = uniform(rng, -1, 1) * vgain + 1;
  cv::Mat lut_h(1, 256, CV_8U), lut_s(1, 256, CV_8U), lut_v(1, 256, CV_8U);
  for (int x = 0; x < 256; ++x) {
    lut_h.at<uint8_t>(x) = static_cast<uint8_t>(static_cast<int>(x * rh) % 180);
    lut_s.at<uint8_t>(x) = static_cast<uint8_t>(std::clamp(x * rs, 0.0, 255.0));
    lut_v.at<uint8_t>(x) = static_cast<uint8_t>(std::clamp(x * rv, 0.0, 255.0));
  }
  cv::Mat rgb = as_mat(image), hsv;
  cv::cvtColor(rgb, hsv, cv::COLOR_RGB2HSV);
  std::vector<cv::Mat> channels;
  cv::split(hsv, channels);
  cv::LUT(channels[0], lut_h, channels[0]);
  cv::LUT(channels[1], lut_s, channels[1]);
  cv::LUT(channels[2], lut_v, channels[2]);
  cv::merge(channels, hsv);
  cv::cvtColor(hsv, rgb, cv::COLOR_HSV2RGB);  // writes into the tensor's memory
}

void flip_horizontal(ImageBoxes& in) {
  const double w = static_cast<double>(in.image.size(1));
  in.image = in.image.flip({1}).contiguous();
  if (in.boxes.size(0) == 0) return;
  at::Tensor x1 = in.boxes.select(1, 1).clone();
  in.boxes.select(1, 1).copy_(w - in.boxes.select(1, 3));
  in.boxes.select(1, 3).copy_(w - x1);
}

}  // namespace revkit
