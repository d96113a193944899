#include "eval/coco.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>

#include "core/atomic_file.h"

namespace revkit {

namespace {
const std::vector<std::string>& coco_names() {
  static const std::vector<std::string> names = {
      "person",         "bicycle",    "car",           "motorcycle",    "airplane",     "bus",           "train",
      "truck",          "boat",       "traffic light", "fire hydrant",  "stop sign",    "parking meter", "bench",
      "bird",           "cat",        "dog",           "horse",         "sheep",        "cow",           "elephant",
      "bear",           "zebra",      "giraffe",       "backpack",      "umbrella",     "handbag",       "tie",
      "suitcase",       "frisbee",    "skis",          "snowboard",     "sports ball",  "kite",          "baseball bat",
      "baseball glove", "skateboard", "surfboard",     "tennis racket", "bottle",       "wine glass",    "cup",
      "fork",           "knife",      "spoon",         "bowl",          "banana",       "apple",         "sandwich",
      "orange",         "broccoli",   "carrot",        "hot dog",       "pizza",        "donut",         "cake",
      "chair",          "couch",      "potted plant",  "bed",           "dining table", "toilet",        "tv",
      "laptop",         "mouse",      "remote",        "keyboard",      "cell phone",   "microwave",     "oven",
      "toaster",        "sink",       "refrigerator",  "book",          "clock",        "vase",          "scissors",
      "teddy bear",     "hair drier", "toothbrush"};
  return names;
}
}  // namespace

bool is_coco_names(const std::vector<std::string>& names) { return names == coco_names(); }

int64_t coco80_to_91(int64_t cls) {
  static const int64_t ids[80] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                                  22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
                                  46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
                                  67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};
  TORCH_CHECK(cls >= 0 && cls < 80, "coco80_to_91: class ", cls, " out of range");
  return ids[cls];
}

void write_coco_detections(const std::string& path, const std::vector<ImageDetections>& detections, bool coco_ids) {
  nlohmann::json out = nlohmann::json::array();
  auto round_to = [](double v, double unit) { return std::round(v / unit) * unit; };
  for (const auto& image : detections) {
    const std::string stem = std::filesystem::path(image.path).stem().string();
    nlohmann::json id = stem;
    if (!stem.empty() && stem.find_first_not_of("0123456789") == std::string::npos) id = std::stoll(stem);
    const at::Tensor b = image.boxes.to(at::kDouble);
    for (int64_t k = 0; k < b.size(0); ++k) {
      const double x1 = b[k][0].item<double>(), y1 = b[k][1].item<double>(), x2 = b[k][2].item<double>(),
                   y2 = b[k][3].item<double>();
      const auto cls = static_cast<int64_t>(b[k][5].item<double>());
      out.push_back(
          {{"image_id", id},
           {"category_id", coco_ids ? coco80_to_91(cls) : cls},
           {"bbox", {round_to(x1, 1e-3), round_to(y1, 1e-3), round_to(x2 - x1, 1e-3), round_to(y2 - y1, 1e-3)}},
           {"score", round_to(b[k][4].item<double>(), 1e-5)}});
    }
  }
  write_file_atomically(path, out.dump());
}

}  // namespace revkit
