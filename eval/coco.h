#pragma once
// COCO's conventions for detections: its 80 class names, their 91-id categories, and the results JSON that
// pycocotools scores.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace revkit {

// The detections of one image, for a results file.
struct ImageDetections {
  std::string path;
  at::Tensor boxes;  // [k, 6] (x1, y1, x2, y2, confidence, class) in the original image's pixels
};

// True when `names` are COCO's 80 class names in order; their classes then map to COCO's 91 category ids.
bool is_coco_names(const std::vector<std::string>& names);
// COCO's category id of an 80-class index.
int64_t coco80_to_91(int64_t cls);
// Writes detections as a COCO results JSON list ({image_id, category_id, bbox [x, y, w, h], score}), atomically.
// image_id is the file stem as a number when it is one (COCO's names), else the stem; category_id is COCO's id
// when `coco_ids`, else the class index.
void write_coco_detections(const std::string& path, const std::vector<ImageDetections>& detections, bool coco_ids);

}  // namespace revkit
