#include "eval/plots.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>

#include "data/images.h"

namespace fs = std::filesystem;
using namespace revkit;

namespace {
std::string temp_file(const std::string& name) {
  return (fs::temp_directory_path() / ("revkit_plot_" + std::to_string(::getpid()) + "_" + name)).string();
}
}  // namespace

TEST_CASE("draw_boxes: the outline in the class colour, nothing below the confidence threshold") {
  at::Tensor image = at::zeros({40, 40, 3}, at::kByte);
  draw_boxes(image, at::tensor({5.0, 5.0, 30.0, 30.0, 0.9, 0.0, 10.0, 10.0, 20.0, 20.0, 0.1, 1.0}).view({2, 6}),
             {"a", "b"});
  // Class 0's colour (255, 56, 56) on the box's lower edge, where no label text is drawn.
  CHECK(image[30][15][0].item<int>() == 255);
  CHECK(image[30][15][1].item<int>() == 56);
  // The second box (confidence 0.1 < 0.25) is not drawn: its lower edge stays black.
  CHECK(image[20][15].sum().item<int>() == 0);
  // Inside the first box, away from its edges and its label, nothing changes.
  CHECK(image[25][25].sum().item<int>() == 0);
}

TEST_CASE("batch picture: a square grid of the images, readable back") {
  const std::string path = temp_file("batch.jpg");
  at::Tensor images = at::full({5, 3, 32, 32}, 100, at::kByte);
  save_batch_picture(path, images, {at::tensor({1.0, 1.0, 20.0, 20.0, 1.0, 0.0}).view({1, 6})}, {"a"});
  const DecodedImage back = decode_image(path, 0);
  CHECK(back.original_width == 96);  // 5 images: a 3 x 3 grid
  CHECK(back.original_height == 96);
  fs::remove(path);
}

TEST_CASE("results plot: one panel per column after the epoch, five to a row") {
  const std::string path = temp_file("results.png");
  std::vector<std::string> columns = {"epoch", "a", "b", "c", "d", "e", "f"};
  std::vector<std::vector<double>> rows = {{0, 1, 2, 3, 4, 5, 6}, {1, 0.5, 2, 3, 4, 5, std::nan("")}};
  plot_results(path, columns, rows);
  const DecodedImage back = decode_image(path, 0);
  CHECK(back.original_width == 5 * 320);
  CHECK(back.original_height == 2 * 240);
  // The first panel's curve is drawn (blue-ish pixels in it), the empty sixth slot stays white.
  const at::Tensor panel = back.image.narrow(0, 28, 190).narrow(1, 40, 270);
  CHECK(panel.select(2, 2).lt(200).any().item<bool>());
  CHECK(back.image.narrow(0, 240, 240).narrow(1, 320 * 1 + 1, 318).eq(255).all().item<bool>());
  fs::remove(path);
}
