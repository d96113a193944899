#pragma once
// The pictures of a run: a batch of images with boxes drawn (labels or predictions), and the curves of
// results.csv. Written atomically as JPEG or PNG (by extension).
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace revkit {

// images: [B, 3, S, S] uint8 RGB (at most 16 are drawn, in a square grid). boxes: per image [k, 6] rows of
// (x1, y1, x2, y2, confidence, class) in pixels of S; a confidence below `min_conf` is not drawn, and a
// confidence of exactly 1 (a label) is not printed.
void save_batch_picture(const std::string& path, const at::Tensor& images, const std::vector<at::Tensor>& boxes,
                        const std::vector<std::string>& names, double min_conf = 0.25);

// One panel per column after the first (the epoch), each a curve over the rows, titled by the column name.
void plot_results(const std::string& path, const std::vector<std::string>& columns,
                  const std::vector<std::vector<double>>& rows);

// Draws boxes on one [H, W, 3] uint8 RGB image in place (as save_batch_picture draws each tile).
void draw_boxes(at::Tensor& image, const at::Tensor& boxes, const std::vector<std::string>& names,
                double min_conf = 0.25);

// Encodes an [H, W, 3] uint8 RGB image (JPEG or PNG by extension) and writes it atomically.
void write_image(const std::string& path, const at::Tensor& image);

}  // namespace revkit
