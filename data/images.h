#pragma once
// Reading images for detection: decode with OpenCV, letterbox to the model's input (aspect kept, padded with
// grey 114, as Ultralytics), move the labels with the image, and map boxes back to the original.
#include <ATen/core/Tensor.h>

#include <string>

namespace revkit {

// Where an image went inside its letterboxed picture, as val.py's scale_boxes undoes it: original pixels =
// (letterboxed - pad) / gain, with gain = resized height / original height.
struct ImageShape {
  double gain = 1;
  double pad_x = 0, pad_y = 0;
  int64_t width = 0, height = 0;  // original size
};

struct LetterboxedImage {
  at::Tensor image;   // [3, H, W] uint8, RGB
  at::Tensor labels;  // [n, 5] (class, x, y, w, h) normalised to the letterboxed picture
  ImageShape shape;
};

struct DecodedImage {
  at::Tensor image;  // [h, w, 3] uint8 RGB, resized so that its long side is the requested size
  double scale = 1;  // resized / original
  int64_t original_width = 0, original_height = 0;
};

// Decodes an image and resizes it so its long side is `long_side` (Ultralytics' load_image: sides rounded up,
// INTER_AREA to shrink as YOLOv5's validation does, unless `shrink_with_area` is false as in Ultralytics 8.4;
// INTER_LINEAR otherwise; 0 keeps its size). Throws InputError ("<path>: cannot decode image ..." or "<path>:
// truncated JPEG ...") for a missing, truncated or corrupt file.
DecodedImage decode_image(const std::string& path, int64_t long_side, bool shrink_with_area = true);

// How validation letterboxes. YOLOv5's val.py: INTER_AREA to shrink, the labels (and the mapping back) moved by the
// float padding, half a pixel from where the picture lands. Ultralytics 8.4: INTER_LINEAR, and the whole-pixel
// padding the picture got.
enum class LetterboxRule { Yolov5, Ultralytics8 };

// decode_image at `long_side`, then Ultralytics' letterbox(auto=False, scaleup=False) onto a grey `height` x
// `width` canvas: the picture at (round(pad_x - 0.1), round(pad_y - 0.1)) with pad = (canvas - picture) / 2 as a
// float, labels (normalised to the original) moved by the pad the rule says and clipped.
LetterboxedImage load_letterboxed(const std::string& path, int64_t long_side, int64_t height, int64_t width,
                                  const at::Tensor& labels, LetterboxRule rule = LetterboxRule::Yolov5);

// detect.py's preparation (letterbox with auto=True, scaleup=True): the image resized to fit a `size` square (sides
// rounded half to even, linear interpolation, enlarging too), then padded only to the next multiple of `stride`
// in each direction; `shape` as detect.py's scale_boxes derives it from the two sizes. Labels are empty.
LetterboxedImage load_for_inference(const std::string& path, int64_t size, int64_t stride);

// val.py's scale_boxes: boxes (x1, y1, x2, y2) in letterboxed pixels to the original image's, clipped to it
// unless `clip` is false.
at::Tensor to_original_pixels(const at::Tensor& boxes, const ImageShape& shape, bool clip = true);

// Normalised (class, x, y, w, h) rows as (class, x1, y1, x2, y2) in pixels of a `width` x `height` picture, and
// back (clipped to it).
at::Tensor to_pixel_corners(const at::Tensor& rows, double width, double height);
at::Tensor to_normalised_centres(const at::Tensor& boxes, double width, double height);

}  // namespace revkit
