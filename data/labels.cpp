#include "data/labels.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace revkit {

namespace {

// A polygon's points (x1 y1 x2 y2 ...) -> the centre and size of the box around them; false when a point
// lies outside the image.
bool polygon_box(const std::vector<double>& v, double box[4]) {
  double x_min = 1, y_min = 1, x_max = 0, y_max = 0;
  for (size_t i = 1; i + 1 < v.size(); i += 2) {
    const double x = v[i], y = v[i + 1];
    if (x < 0 || x > 1 || y < 0 || y > 1) return false;
    x_min = std::min(x_min, x), x_max = std::max(x_max, x);
    y_min = std::min(y_min, y), y_max = std::max(y_max, y);
  }
  box[0] = (x_min + x_max) / 2, box[1] = (y_min + y_max) / 2, box[2] = x_max - x_min, box[3] = y_max - y_min;
  return true;
}

}  // namespace

ParsedLabels parse_yolo_labels(const std::string& text, const std::string& source, int64_t num_classes) {
  ParsedLabels out;
  std::vector<std::array<float, 5>> rows;
  std::istringstream lines(text);
  std::string line;
  int64_t number = 0;
  while (std::getline(lines, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto skip = [&](const std::string& what) {
      out.problems.push_back(fmt::format("{}:{}: {}", source, number, what));
    };
    std::istringstream fields(line);
    std::vector<std::string> tokens;
    for (std::string t; fields >> t;) tokens.push_back(t);
    const bool polygon = tokens.size() >= 7 && tokens.size() % 2 == 1;
    if (tokens.size() != 5 && !polygon) {
      skip(fmt::format("expected 5 columns (class x y w h) or a polygon (class x1 y1 x2 y2 x3 y3 ...), got {}",
                       tokens.size()));
      continue;
    }
    std::vector<double> v(tokens.size());
    bool numeric = true;
    for (size_t i = 0; i < tokens.size(); ++i) {
      char* end = nullptr;
      v[i] = std::strtod(tokens[i].c_str(), &end);
      // Decimal numbers only, as Python's float() reads them: strtod also takes hexadecimal ("0x1" is 1).
      const bool decimal = tokens[i].find_first_not_of("0123456789+-.eE") == std::string::npos;
      if (!decimal || end == tokens[i].c_str() || *end != '\0' || !std::isfinite(v[i])) numeric = false;
    }
    if (!numeric) {
      skip("a value is not a finite number: " + line);
      continue;
    }
    if (v[0] < 0 || v[0] != std::floor(v[0]) || (num_classes > 0 && v[0] >= num_classes)) {
      skip(num_classes > 0 ? fmt::format("class {} is not in 0..{}", tokens[0], num_classes - 1)
                           : fmt::format("class {} is not a non-negative integer", tokens[0]));
      continue;
    }
    double box[4] = {v[1], v[2], v[3], v[4]};
    if (polygon && !polygon_box(v, box)) {
      skip("polygon points must be normalised to [0, 1]: " + line);
      continue;
    }
    if (box[0] < 0 || box[0] > 1 || box[1] < 0 || box[1] > 1 || box[2] < 0 || box[2] > 1 || box[3] < 0 ||
        box[3] > 1) {
      skip("coordinates must be normalised: centre in [0, 1], size in [0, 1]: " + line);
      continue;
    }
    if (box[2] == 0 || box[3] == 0) {
      ++out.empty_boxes;
      continue;
    }
    const std::array<float, 5> row = {static_cast<float>(v[0]), static_cast<float>(box[0]), static_cast<float>(box[1]),
                                      static_cast<float>(box[2]), static_cast<float>(box[3])};
    if (std::find(rows.begin(), rows.end(), row) != rows.end()) {
      ++out.duplicates;
      continue;
    }
    rows.push_back(row);
  }
  out.rows = at::empty({static_cast<int64_t>(rows.size()), 5}, at::kFloat);
  if (!rows.empty()) std::memcpy(out.rows.data_ptr<float>(), rows.data(), rows.size() * sizeof(rows[0]));
  return out;
}

ParsedLabels read_yolo_labels(const std::string& path, int64_t num_classes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open label file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_yolo_labels(buffer.str(), path, num_classes);
}

at::Tensor yolo_to_corners(const at::Tensor& rows, double width, double height) {
  at::Tensor xy = rows.narrow(1, 1, 2), half = rows.narrow(1, 3, 2) / 2;
  at::Tensor scale = at::tensor({width, height, width, height}, rows.options());
  return at::cat({rows.narrow(1, 0, 1), at::cat({xy - half, xy + half}, 1) * scale}, 1);
}

CocoGroundTruth read_coco_instances(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "cannot open file");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("not valid JSON: ") + e.what());
  }
  for (const char* key : {"images", "annotations", "categories"})
    if (!j.contains(key) || !j[key].is_array())
      throw InputError(path, fmt::format("no '{}' list: not COCO instances", key));
  CocoGroundTruth gt;
  try {
    for (const auto& c : j["categories"]) gt.category_ids.push_back(c.at("id").get<int64_t>());
    std::sort(gt.category_ids.begin(), gt.category_ids.end());
    std::map<int64_t, std::vector<float>> rows;
    for (const auto& im : j["images"]) {
      gt.file_names[im.at("id").get<int64_t>()] = im.at("file_name").get<std::string>();
      rows[im.at("id").get<int64_t>()];
    }
    for (const auto& a : j["annotations"]) {
      if (a.value("iscrowd", 0) != 0) {
        ++gt.crowd;
        continue;
      }
      const int64_t category = a.at("category_id").get<int64_t>();
      auto it = std::lower_bound(gt.category_ids.begin(), gt.category_ids.end(), category);
      if (it == gt.category_ids.end() || *it != category)
        throw InputError(path,
                         fmt::format("annotation {} has unknown category {}", a.value("id", int64_t{-1}), category));
      const auto& b = a.at("bbox");
      const float x = b.at(0).get<float>(), y = b.at(1).get<float>(), w = b.at(2).get<float>(),
                  h = b.at(3).get<float>();
      auto& r = rows[a.at("image_id").get<int64_t>()];
      r.insert(r.end(), {static_cast<float>(it - gt.category_ids.begin()), x, y, x + w, y + h});
    }
    for (auto& [id, r] : rows) gt.labels[id] = at::tensor(r, at::kFloat).view({-1, 5});
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, std::string("malformed COCO entry: ") + e.what());
  }
  return gt;
}

}  // namespace revkit
