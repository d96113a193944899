#pragma once
// `revkit detect`: a trained detector's boxes on images, as YOLOv5's detect.py finds them. Each image is resized
// to fit the input size and padded only to a multiple of the stride, run in eval mode, filtered by NMS, and its
// boxes mapped back to the original image's pixels (rounded to whole pixels); the image can be written with its
// boxes drawn, and the boxes as YOLO txt rows.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "models/detection_model.h"

namespace revkit {

struct PredictOptions {
  int64_t imgsz = 640;
  double conf = 0.25;
  double iou = -1;  // -1: the head's default (YOLOv5 0.45, YOLOv8 0.7)
  int64_t max_det = 1000;
  c10::Device device = c10::kCPU;
};

struct Prediction {
  std::string path;
  at::Tensor boxes;  // [k, 6] (x1, y1, x2, y2, confidence, class) in the original image's whole pixels
  int64_t width = 0, height = 0;
};

class Predictor {
 public:
  // Moves the model to the device and into eval mode; `names` labels the drawn boxes.
  Predictor(DetectionModel model, std::vector<std::string> names, PredictOptions options);
  // Throws InputError for an image that cannot be read.
  Prediction predict(const std::string& image_path);
  // "2 person, 1 dog", or "no detections".
  std::string summary(const Prediction& p) const;
  // The original image with the boxes drawn, written to <folder>/<file name>.
  void save_image(const Prediction& p, const std::string& folder) const;
  // YOLO txt rows "class x y w h confidence" (normalised) to <folder>/<stem>.txt.
  void save_txt(const Prediction& p, const std::string& folder) const;

 private:
  DetectionModel model_;
  std::vector<std::string> names_;
  PredictOptions options_;
};

// The images to predict on: the file itself, or the images of a folder (by extension, sorted). InputError when
// there are none.
std::vector<std::string> list_images(const std::string& source);

}  // namespace revkit
