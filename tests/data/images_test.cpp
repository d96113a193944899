#include "data/images.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

using namespace revkit;

TEST_CASE("letterbox: aspect kept, grey padding, labels moved with the image") {
  // coco8's 000000000009.jpg is 640x480: scaled by 0.5 to 320x240, padded 40 pixels above and below.
  at::Tensor labels = at::tensor({0.f, 0.5f, 0.5f, 0.5f, 0.5f}).view({1, 5});
  const auto lb = load_letterboxed(REVKIT_ASSETS "/coco8/images/train/000000000009.jpg", 320, labels);
  CHECK(lb.original_width == 640);
  CHECK(lb.original_height == 480);
  CHECK(lb.scale == doctest::Approx(0.5));
  CHECK(lb.pad_x == 0);
  CHECK(lb.pad_y == 40);
  CHECK(lb.image.sizes() == at::IntArrayRef({3, 320, 320}));
  CHECK(lb.image[0][5][100].item<uint8_t>() == 114);                    // padding
  CHECK(lb.labels[0][2].item<float>() == doctest::Approx(0.5));         // centred stays centred
  CHECK(lb.labels[0][4].item<float>() == doctest::Approx(0.5 * 0.75));  // height shrinks with the padding
  at::Tensor back = unletterbox_boxes(at::tensor({0.f, 40.f, 320.f, 280.f}).view({1, 4}), lb);
  CHECK(back[0][2].item<float>() == doctest::Approx(640));
  CHECK(back[0][3].item<float>() == doctest::Approx(480));
}

TEST_CASE("a truncated or missing image is a clear error") {
  const std::string cut =
      (std::filesystem::temp_directory_path() / ("cut_" + std::to_string(::getpid()) + ".jpg")).string();
  {
    std::ifstream in(REVKIT_ASSETS "/coco8/images/train/000000000009.jpg", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, 200);
  }
  CHECK_THROWS_WITH_AS(load_letterboxed(cut, 320, at::zeros({0, 5})), doctest::Contains("cannot decode image"),
                       InputError);
  std::filesystem::remove(cut);
  CHECK_THROWS_WITH_AS(load_letterboxed("nope.jpg", 320, at::zeros({0, 5})),
                       "nope.jpg: cannot decode image (missing, truncated or not an image)", InputError);
}
