#include "eval/plots.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"

namespace revkit {
namespace {

cv::Scalar class_colour(int64_t cls) {
  // A fixed palette in RGB order (the image is RGB until it is written).
  static const int palette[][3] = {{255, 56, 56},  {255, 157, 151}, {255, 112, 31}, {255, 178, 29},  {207, 210, 49},
                                   {72, 249, 10},  {146, 204, 23},  {61, 219, 134}, {26, 147, 52},   {0, 212, 187},
                                   {44, 153, 168}, {0, 194, 255},   {52, 69, 147},  {100, 115, 255}, {0, 24, 236},
                                   {132, 56, 255}, {82, 0, 133},    {203, 56, 255}, {255, 149, 200}, {255, 55, 199}};
  const auto& c = palette[cls % 20];
  return cv::Scalar(c[0], c[1], c[2]);
}

cv::Mat as_mat(at::Tensor& image) {
  TORCH_CHECK(image.dim() == 3 && image.size(2) == 3 && image.scalar_type() == at::kByte && image.is_contiguous(),
              "expected a contiguous [H, W, 3] uint8 image");
  return cv::Mat(static_cast<int>(image.size(0)), static_cast<int>(image.size(1)), CV_8UC3, image.data_ptr());
}

}  // namespace

void draw_boxes(at::Tensor& image, const at::Tensor& boxes, const std::vector<std::string>& names, double min_conf) {
  cv::Mat m = as_mat(image);
  const at::Tensor b = boxes.to(at::kDouble).cpu();
  const int thickness = std::max(1, static_cast<int>(std::round(std::max(m.rows, m.cols) / 400.0)));
  for (int64_t k = 0; k < b.size(0); ++k) {
    const double conf = b[k][4].item<double>();
    if (conf < min_conf) continue;
    const auto cls = static_cast<int64_t>(b[k][5].item<double>());
    const cv::Point p1(static_cast<int>(b[k][0].item<double>()), static_cast<int>(b[k][1].item<double>()));
    const cv::Point p2(static_cast<int>(b[k][2].item<double>()), static_cast<int>(b[k][3].item<double>()));
    const cv::Scalar colour = class_colour(cls);
    cv::rectangle(m, p1, p2, colour, thickness);
    std::string text = cls >= 0 && cls < static_cast<int64_t>(names.size()) ? names[cls] : std::to_string(cls);
    if (conf < 1.0) text += fmt::format(" {:.2f}", conf);
    int baseline = 0;
    const double scale = 0.4;
    const cv::Size t = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &baseline);
    const int top = std::max(p1.y - t.height - 4, 0);
    cv::rectangle(m, cv::Point(p1.x, top), cv::Point(p1.x + t.width + 2, top + t.height + 4), colour, cv::FILLED);
    cv::putText(m, text, cv::Point(p1.x + 1, top + t.height + 1), cv::FONT_HERSHEY_SIMPLEX, scale,
                cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
  }
}

void write_image(const std::string& path, const at::Tensor& image) {
  at::Tensor rgb = image.contiguous();
  cv::Mat bgr;
  cv::cvtColor(as_mat(rgb), bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> bytes;
  const std::string ext = std::filesystem::path(path).extension().string();
  if (!cv::imencode(ext.empty() ? ".jpg" : ext, bgr, bytes)) throw InputError(path, "cannot encode image");
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

void save_batch_picture(const std::string& path, const at::Tensor& images, const std::vector<at::Tensor>& boxes,
                        const std::vector<std::string>& names, double min_conf) {
  const int64_t n = std::min<int64_t>(images.size(0), 16), size = images.size(2);
  const auto grid = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  at::Tensor canvas = at::full({grid * size, grid * size, 3}, 255, at::kByte);
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor tile = images[i].permute({1, 2, 0}).contiguous();
    if (i < static_cast<int64_t>(boxes.size())) draw_boxes(tile, boxes[i], names, min_conf);
    canvas.narrow(0, (i / grid) * size, size).narrow(1, (i % grid) * size, size).copy_(tile);
  }
  // Tile borders
  for (int64_t g = 1; g < grid; ++g) {
    canvas.narrow(0, g * size - 1, 2).fill_(255);
    canvas.narrow(1, g * size - 1, 2).fill_(255);
  }
  write_image(path, canvas);
}

void plot_results(const std::string& path, const std::vector<std::string>& columns,
                  const std::vector<std::vector<double>>& rows) {
  const int panels = static_cast<int>(columns.size()) - 1, per_row = 5;
  const int pw = 320, ph = 240, margin = 40;
  const int grid_rows = (panels + per_row - 1) / per_row;
  cv::Mat canvas(grid_rows * ph, per_row * pw, CV_8UC3, cv::Scalar(255, 255, 255));
  for (int p = 0; p < panels; ++p) {
    const cv::Rect box((p % per_row) * pw, (p / per_row) * ph, pw, ph);
    cv::Mat panel = canvas(box);
    cv::putText(panel, columns[p + 1], cv::Point(8, 18), cv::FONT_HERSHEY_SIMPLEX, 0.45, cv::Scalar(0, 0, 0), 1,
                cv::LINE_AA);
    const cv::Rect plot(margin, 28, pw - margin - 10, ph - 28 - 24);
    cv::rectangle(panel, plot, cv::Scalar(160, 160, 160), 1);
    std::vector<cv::Point2d> points;
    for (const auto& r : rows)
      if (std::isfinite(r[p + 1])) points.emplace_back(r[0], r[p + 1]);
    if (points.empty()) continue;
    double x0 = points.front().x, x1 = points.back().x, y0 = points.front().y, y1 = y0;
    for (const auto& q : points) y0 = std::min(y0, q.y), y1 = std::max(y1, q.y);
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + std::max(1e-6, std::abs(y0) * 0.1);
    auto to_pixel = [&](const cv::Point2d& q) {
      return cv::Point(plot.x + static_cast<int>((q.x - x0) / (x1 - x0) * plot.width),
                       plot.y + plot.height - static_cast<int>((q.y - y0) / (y1 - y0) * plot.height));
    };
    for (size_t i = 0; i < points.size(); ++i) {
      cv::circle(panel, to_pixel(points[i]), 2, cv::Scalar(180, 119, 31), cv::FILLED);
      if (i > 0)
        cv::line(panel, to_pixel(points[i - 1]), to_pixel(points[i]), cv::Scalar(180, 119, 31), 1, cv::LINE_AA);
    }
    const auto label = [&](double v) { return fmt::format("{:.3g}", v); };
    cv::putText(panel, label(y1), cv::Point(2, plot.y + 10), cv::FONT_HERSHEY_SIMPLEX, 0.33, cv::Scalar(80, 80, 80), 1);
    cv::putText(panel, label(y0), cv::Point(2, plot.y + plot.height), cv::FONT_HERSHEY_SIMPLEX, 0.33,
                cv::Scalar(80, 80, 80), 1);
    cv::putText(panel, label(x0), cv::Point(plot.x, ph - 8), cv::FONT_HERSHEY_SIMPLEX, 0.33, cv::Scalar(80, 80, 80), 1);
    cv::putText(panel, label(x1), cv::Point(plot.x + plot.width - 20, ph - 8), cv::FONT_HERSHEY_SIMPLEX, 0.33,
                cv::Scalar(80, 80, 80), 1);
  }
  std::vector<uint8_t> bytes;
  cv::imencode(".png", canvas, bytes);
  AtomicFile file(path);
  file.write(bytes.data(), bytes.size());
  file.commit();
}

}  // namespace revkit
