#pragma once
// Reading images for detection: decode with OpenCV, letterbox to a square of the model's input size (aspect
// kept, padded with grey 114, as Ultralytics), and move the labels with the image.
#include <ATen/core/Tensor.h>

#include <string>

namespace revkit {

struct LetterboxedImage {
  at::Tensor image;   // [3, size, size] uint8, RGB
  at::Tensor labels;  // [n, 5] (class, x, y, w, h) normalised to the letterboxed image
  double scale = 1;   // resized / original
  int64_t pad_x = 0, pad_y = 0;
  int64_t original_width = 0, original_height = 0;
};

struct DecodedImage {
  at::Tensor image;  // [h, w, 3] uint8 RGB, resized so that its long side is the requested size
  double scale = 1;  // resized / original
  int64_t original_width = 0, original_height = 0;
};

// "" for a complete file; else what is wrong with the end of a JPEG (no end-of-image marker) or PNG (no IEND
// chunk) that was cut short. Other formats are left to the decoder.
std::string truncated_image_problem(const std::string& path);

// Decodes an image and resizes it so its long side is `long_side` (Ultralytics' load_image: sides rounded up,
// INTER_AREA to shrink, INTER_LINEAR to enlarge; 0 keeps its size). Throws InputError ("<path>: cannot decode image ..." or "<path>: truncated JPEG ...") for a missing, truncated or corrupt file.
DecodedImage decode_image(const std::string& path, int64_t long_side);

// decode_image, then padded to a centred square with the labels moved along.
LetterboxedImage load_letterboxed(const std::string& path, int64_t size, const at::Tensor& labels);

// Maps boxes (x1, y1, x2, y2) on the letterboxed image back to the original image's pixels.
at::Tensor unletterbox_boxes(const at::Tensor& boxes, const LetterboxedImage& info);

}  // namespace revkit
