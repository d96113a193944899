#pragma once
// Detection datasets in the Ultralytics layout: a data yaml (`path`, `train`, `val`, optional `test`, `names`)
// whose splits are image folders, text files listing images, or lists of either; labels beside the images in
// a parallel `labels` folder (.../images/x.jpg -> .../labels/x.txt).
#include <ATen/core/Tensor.h>

#include <array>
#include <string>
#include <vector>

namespace revkit {

struct DataConfig {
  std::string source;  // the yaml
  std::string root;    // `path`, resolved against the yaml's folder
  std::vector<std::string> names;
  std::vector<std::string> train, val, test;  // the splits as written, resolved against root
};

// Throws InputError naming the file and the field for a missing or malformed split or names.
DataConfig load_data_config(const std::string& yaml_path);

// Ultralytics' rule: the last "/images/" in the path becomes "/labels/", the extension ".txt".
std::string label_path_for(const std::string& image_path);

struct DatasetIndex {
  std::vector<std::string> images;
  std::vector<at::Tensor> labels;       // per image: [n, 5] (class, x, y, w, h) normalised
  int64_t backgrounds = 0;              // images without a label file, or with an empty one
  int64_t orphan_labels = 0;            // label files without an image (skipped)
  std::vector<std::string> problems;    // bad label rows, "<file>:<line>: <what>"
  int64_t bad_label_images = 0;         // images left out for a bad label row
  // "<file>: N duplicate label rows removed" and "<file>: N boxes of zero width or height removed"
  std::vector<std::string> duplicates;
  // Per image (width, height), once known: drop_unreadable_images fills it (rect batches need the shapes).
  std::vector<std::array<int64_t, 2>> sizes;
  int64_t boxes() const;
};

// Lists the images of a split (folders searched recursively, through linked folders, for .jpg/.jpeg/.png/.bmp/
// .webp/.tif/.tiff, leaving out hidden files and folders; any other file is a list of images, one per line; sorted)
// and reads their labels. A missing folder or list file, or a split with no image, is an InputError. An image with
// a bad label row is left out, as Ultralytics leaves it out, and the row recorded in `problems`; with `strict`, the
// row is an InputError.
DatasetIndex index_split(const std::vector<std::string>& split, int64_t num_classes, bool strict,
                         const std::string& source);

// Warns about what index_split left out or found odd: bad label rows (the first five, then how many more),
// duplicate rows, label files without an image, and a split without a single box.
void warn_about_labels(const DatasetIndex& index, const std::string& source, const std::string& split);

}  // namespace revkit
