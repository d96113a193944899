#include "data/dataset.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/logging.h"
#include "data/labels.h"

namespace fs = std::filesystem;

namespace revkit {
namespace {

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::set<std::string> known = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"};
  return known.count(ext) > 0;
}

std::vector<std::string> split_entries(const nlohmann::json& value, const std::string& root, const std::string& source,
                                       const char* key) {
  std::vector<std::string> out;
  auto add = [&](const nlohmann::json& v) {
    if (!v.is_string() || v.get<std::string>().empty())
      throw InputError(source,
                       fmt::format("'{}' must be a folder, a .txt list or a list of them, got {}", key, v.dump()));
    const std::string written = v.get<std::string>();
    const fs::path p(written);
    fs::path resolved = (p.is_absolute() ? p : fs::path(root) / p).lexically_normal();
    // Roboflow's exports name their splits "../train/images" from a yaml beside train/: Ultralytics looks there too.
    if (!fs::exists(resolved) && written.rfind("../", 0) == 0) {
      const fs::path beside = (fs::path(root) / written.substr(3)).lexically_normal();
      if (fs::exists(beside)) {
        logger()->info("{}: '{}' is not there; using {} (the layout of Roboflow's exports)", source, written,
                       beside.string());
        resolved = beside;
      }
    }
    out.push_back(resolved.string());
  };
  if (value.is_array())
    for (const auto& v : value) add(v);
  else
    add(value);
  return out;
}

}  // namespace

DataConfig load_data_config(const std::string& yaml_path) {
  const nlohmann::json j = load_config_file(yaml_path);
  if (!j.is_object()) throw InputError(yaml_path, "a data yaml must be a mapping with train, val and names");
  DataConfig c;
  c.source = yaml_path;
  const fs::path folder = fs::path(yaml_path).parent_path();
  fs::path root = folder;
  if (j.contains("path") && !j["path"].is_null()) {
    if (!j["path"].is_string()) throw InputError(yaml_path, "'path' must be a folder");
    const fs::path p(j["path"].get<std::string>());
    root = p.is_absolute() ? p : folder / p;
  }
  c.root = root.lexically_normal().string();
  // Absent, null or an empty string: no such split (Ultralytics' `test: ''`). `validation` is another name for val.
  auto given = [&](const char* key) { return j.contains(key) && !j[key].is_null() && j[key] != ""; };
  const char* val_key = !given("val") && given("validation") ? "validation" : "val";
  for (const char* key : {"train", val_key})
    if (!given(key)) throw InputError(yaml_path, fmt::format("'{}' is missing", key));
  c.train = split_entries(j["train"], c.root, yaml_path, "train");
  c.val = split_entries(j[val_key], c.root, yaml_path, val_key);
  if (given("test")) c.test = split_entries(j["test"], c.root, yaml_path, "test");

  // Ultralytics' rule: `nc` alone names the classes class_0, class_1, ...; with `names` it must agree.
  int64_t nc = -1;
  if (j.contains("nc") && !j["nc"].is_null()) {
    if (!j["nc"].is_number_integer() || j["nc"].get<int64_t>() < 1 || j["nc"].get<int64_t>() > 100000)
      throw InputError(yaml_path, fmt::format("'nc' must be a number of classes from 1 to 100000, got {}",
                                              j["nc"].dump()));
    nc = j["nc"].get<int64_t>();
  }
  if (!j.contains("names") || j["names"].is_null()) {
    if (nc < 0) throw InputError(yaml_path, "'names' is missing (the class names)");
    for (int64_t i = 0; i < nc; ++i) c.names.push_back(fmt::format("class_{}", i));
    return c;
  }
  const auto& names = j["names"];
  if (names.is_array()) {
    for (const auto& n : names) c.names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
  } else if (names.is_object()) {
    c.names.resize(names.size());
    for (auto it = names.begin(); it != names.end(); ++it) {
      size_t used = 0;
      long index = -1;
      try {
        index = std::stol(it.key(), &used);
      } catch (const std::exception&) {
      }
      if (used != it.key().size() || index < 0 || index >= static_cast<long>(names.size()))
        throw InputError(yaml_path, fmt::format("'names' keys must be 0..{}, got '{}'", names.size() - 1, it.key()));
      c.names[index] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
    }
  } else {
    throw InputError(yaml_path, "'names' must be a list or a map of class index to name");
  }
  if (nc >= 0 && nc != static_cast<int64_t>(c.names.size()))
    throw InputError(yaml_path, fmt::format("'nc' is {} but 'names' has {} classes", nc, c.names.size()));
  if (c.names.empty()) throw InputError(yaml_path, "'names' is empty");
  return c;
}

std::string label_path_for(const std::string& image_path) {
  std::string p = image_path;
  const std::string images = std::string(1, fs::path::preferred_separator) + "images" + fs::path::preferred_separator;
  const auto at = p.rfind(images);
  if (at != std::string::npos)
    p.replace(at, images.size(),
              std::string(1, fs::path::preferred_separator) + "labels" + fs::path::preferred_separator);
  return fs::path(p).replace_extension(".txt").string();
}

int64_t DatasetIndex::boxes() const {
  int64_t n = 0;
  for (const auto& l : labels) n += l.size(0);
  return n;
}

DatasetIndex index_split(const std::vector<std::string>& split, int64_t num_classes, bool strict,
                         const std::string& source) {
  DatasetIndex index;
  std::set<std::string> label_dirs;
  for (const auto& entry : split) {
    const fs::path p(entry);
    if (fs::is_directory(p)) {
      // Hidden files and folders (.ipynb_checkpoints, macOS' ._ files) are not data, as Ultralytics' glob skips them;
      // linked folders are, as its glob follows them, each folder once (a link may lead back up).
      std::set<fs::path> seen = {fs::canonical(p)};
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::follow_directory_symlink);
           it != fs::recursive_directory_iterator(); ++it) {
        if (it->path().filename().string().rfind('.', 0) == 0 ||
            (it->is_directory() && !seen.insert(fs::canonical(it->path())).second)) {
          it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file() && is_image(it->path())) index.images.push_back(it->path().string());
      }
    } else if (fs::is_regular_file(p) && !is_image(p)) {  // a list of images, whatever its extension
      std::ifstream list(p, std::ios::binary);
      for (std::string line; std::getline(list, line);) {
        if (line.find('\0') != std::string::npos)
          throw InputError(source, fmt::format("split entry '{}' is neither a folder nor a list of images (it holds "
                                               "binary data)",
                                               entry));
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        fs::path image(line);
        if (image.is_relative()) image = p.parent_path() / image;
        index.images.push_back(image.lexically_normal().string());
      }
    } else {
      throw InputError(source, fmt::format("split entry '{}' is neither a folder nor a list of images", entry));
    }
  }
  std::sort(index.images.begin(), index.images.end());
  index.images.erase(std::unique(index.images.begin(), index.images.end()), index.images.end());
  if (index.images.empty()) throw InputError(source, "no images found in " + fmt::format("{}", fmt::join(split, ", ")));

  std::set<std::string> expected_labels;
  const std::vector<std::string> listed = std::move(index.images);
  index.images.clear();
  for (const auto& image : listed) {
    const std::string label = label_path_for(image);
    expected_labels.insert(fs::path(label).lexically_normal().string());
    label_dirs.insert(fs::path(label).parent_path().string());
    const fs::file_status status = fs::status(label);
    if (fs::exists(status) && !fs::is_regular_file(status))
      throw InputError(label, fmt::format("the label file of {} is not a regular file", image));
    if (!fs::exists(status)) {
      ++index.backgrounds;
      index.images.push_back(image);
      index.labels.push_back(at::zeros({0, 5}));
      continue;
    }
    ParsedLabels parsed = read_yolo_labels(label, num_classes);
    if (strict && !parsed.problems.empty()) throw InputError(parsed.problems.front());
    if (!parsed.problems.empty()) {  // its other objects would be learned as background
      for (auto& p : parsed.problems) index.problems.push_back(std::move(p));
      ++index.bad_label_images;
      continue;
    }
    if (parsed.duplicates > 0)
      index.duplicates.push_back(fmt::format("{}: {} duplicate label row{} removed", label, parsed.duplicates,
                                             parsed.duplicates > 1 ? "s" : ""));
    if (parsed.empty_boxes > 0)
      index.duplicates.push_back(fmt::format("{}: {} box{} of zero width or height removed", label,
                                             parsed.empty_boxes, parsed.empty_boxes > 1 ? "es" : ""));
    if (parsed.rows.size(0) == 0) ++index.backgrounds;
    index.images.push_back(image);
    index.labels.push_back(parsed.rows);
  }
  if (index.images.empty())
    throw InputError(source, fmt::format("every one of the {} images has a bad label row (first: {})", listed.size(),
                                         index.problems.front()));
  for (const auto& dir : label_dirs) {
    if (!fs::is_directory(dir)) continue;
    for (const auto& f : fs::directory_iterator(dir))
      if (f.path().extension() == ".txt" && f.path().filename().string().rfind('.', 0) != 0 &&
          !expected_labels.count(f.path().lexically_normal().string()))
        ++index.orphan_labels;
  }
  return index;
}

void warn_about_labels(const DatasetIndex& index, const std::string& source, const std::string& split) {
  for (size_t i = 0; i < std::min<size_t>(index.problems.size(), 5); ++i)
    logger()->warn("{} (its image left out)", index.problems[i]);
  if (index.problems.size() > 5) logger()->warn("... {} more bad label rows", index.problems.size() - 5);
  for (size_t i = 0; i < std::min<size_t>(index.duplicates.size(), 5); ++i) logger()->warn("{}", index.duplicates[i]);
  if (index.duplicates.size() > 5)
    logger()->warn("... and {} more like these", index.duplicates.size() - 5);
  if (index.orphan_labels > 0)
    logger()->warn("{} {}: {} label files without an image (skipped)", source, split, index.orphan_labels);
  if (index.boxes() == 0 && !index.images.empty())
    logger()->warn("{} {}: no labels: every image is a background (labels are read from {}, as Ultralytics finds "
                   "them)",
                   source, split, label_path_for(index.images.front()));
}

}  // namespace revkit
