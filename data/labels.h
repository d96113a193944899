#pragma once
// Ground truth in the two formats detection data comes in: YOLO label files (one row per object,
// "class x_center y_center width height", normalised to [0, 1]) and COCO instances JSON.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace revkit {

struct ParsedLabels {
  at::Tensor rows;                    // [n, 5] float: class, x, y, w, h (normalised)
  std::vector<std::string> problems;  // "<source>:<line>: <what>" for each row skipped
  int64_t duplicates = 0;             // rows equal to an earlier row, removed
  int64_t empty_boxes = 0;            // boxes of zero width or height, removed
};

// Parses the text of one YOLO label file. An empty text is a background image; CRLF line ends and a missing
// final newline are fine. A row of 1 + 2k values (k >= 3) is a polygon (a segment label: class x1 y1 x2 y2 ...)
// and becomes the box around its points, as Ultralytics converts segments. A row with any other number of
// columns, a value that is not a finite number, a class outside [0, num_classes) (when num_classes > 0), a
// polygon point outside [0, 1], a centre outside [0, 1] or a size outside [0, 1] is skipped and described in
// `problems`. A row equal to an earlier one is dropped and counted in `duplicates` (Ultralytics removes them
// too: a repeated box would be counted twice as a target); a box of zero width or height (a polygon on one line)
// is dropped and counted in `empty_boxes`: Ultralytics accepts the row, and no prediction can ever match it.
ParsedLabels parse_yolo_labels(const std::string& text, const std::string& source, int64_t num_classes = -1);
// Reads and parses a label file; throws InputError when it cannot be read.
ParsedLabels read_yolo_labels(const std::string& path, int64_t num_classes = -1);

// (class, x, y, w, h) normalised -> (class, x1, y1, x2, y2) scaled by width and height.
at::Tensor yolo_to_corners(const at::Tensor& rows, double width = 1.0, double height = 1.0);

struct CocoGroundTruth {
  std::vector<int64_t> category_ids;          // sorted; a YOLO class is the index of its id here
  std::map<int64_t, std::string> file_names;  // image id -> file name
  std::map<int64_t, at::Tensor> labels;       // image id -> [n, 5] (class, x1, y1, x2, y2) in pixels, crowds left out
  int64_t crowd = 0;                          // crowd annotations left out
};

// Reads a COCO instances JSON (images, annotations, categories). Throws InputError naming the file and the
// first malformed entry.
CocoGroundTruth read_coco_instances(const std::string& path);

}  // namespace revkit
