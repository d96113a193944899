#pragma once
// Training-time augmentation as Ultralytics YOLOv5 does it (hyp.scratch-low): mosaic of four images, random
// affine (translate, scale) with boxes moved and filtered, HSV jitter, horizontal flip. Images are [H, W, 3]
// uint8 RGB tensors; boxes are [n, 5] rows of (class, x1, y1, x2, y2) in pixels. Every random draw comes from the
// caller's generator, so a sample depends only on its seed, never on which loader thread made it.
#include <ATen/core/Tensor.h>

#include <array>
#include <random>

namespace revkit {

struct AugmentOptions {
  double hsv_h = 0.015, hsv_s = 0.7, hsv_v = 0.4;  // gains of the HSV jitter
  double translate = 0.1, scale = 0.5;             // random affine: +-fraction of the side, 1 +- scale
  double fliplr = 0.5;                             // probability of a horizontal flip
  double mosaic = 1.0;                             // probability of a mosaic
};

using AugmentRng = std::mt19937_64;

struct ImageBoxes {
  at::Tensor image;  // [H, W, 3] uint8
  at::Tensor boxes;  // [n, 5] float (class, x1, y1, x2, y2) in pixels
};

// Pads (grey 114) a picture whose long side is at most `size` to `size` x `size`, centred; boxes move with it.
ImageBoxes pad_to_square(const ImageBoxes& in, int64_t size, int64_t* pad_x = nullptr, int64_t* pad_y = nullptr);

// Four pictures (long side `size` each) around a random centre on a 2 size x 2 size grey canvas; boxes clipped to it.
ImageBoxes mosaic4(const std::array<ImageBoxes, 4>& parts, int64_t size, AugmentRng& rng);

// Random scale (1 +- scale) about the centre and translation (+-translate of the side), then a crop of
// `out_size` x `out_size` (`border` pixels cut from each side: -size/2 after a mosaic, 0 otherwise). Boxes are
// transformed, clipped, and dropped when under 2 pixels, under 10% of their scaled area, or thinner than 1:100.
ImageBoxes random_affine(const ImageBoxes& in, int64_t out_size, double translate, double scale, AugmentRng& rng);

// Multiplies hue, saturation and value by 1 + U(-1, 1) * gain each, in place.
void augment_hsv(at::Tensor& image, double hgain, double sgain, double vgain, AugmentRng& rng);

// Mirrors the picture and its boxes left to right, in place of `in`.
void flip_horizontal(ImageBoxes& in);

// Ultralytics' box_candidates: which boxes survive an augmentation. before: [n, 4] corners scaled by `scale`
// already; after: [n, 4]. Returns [n] booleans.
at::Tensor box_candidates(const at::Tensor& before, const at::Tensor& after, double area_fraction = 0.1);

}  // namespace revkit
