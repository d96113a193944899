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
  const auto lb = load_letterboxed(REVKIT_ASSETS "/coco8/images/train/000000000009.jpg", 320, 320, 320, labels);
  CHECK(lb.shape.width == 640);
  CHECK(lb.shape.height == 480);
  CHECK(lb.shape.gain == 0.5);
  CHECK(lb.shape.pad_x == 0.0);
  CHECK(lb.shape.pad_y == 40.0);
  CHECK(lb.image.sizes() == at::IntArrayRef({3, 320, 320}));
  CHECK(lb.image[0][5][100].item<uint8_t>() == 114);                    // padding
  CHECK(lb.labels[0][2].item<float>() == doctest::Approx(0.5));         // centred stays centred
  CHECK(lb.labels[0][4].item<float>() == doctest::Approx(0.5 * 0.75));  // height shrinks with the padding
  at::Tensor back = to_original_pixels(at::tensor({0.f, 40.f, 320.f, 290.f}).view({1, 4}), lb.shape);  // clipped
  CHECK(back[0][2].item<float>() == doctest::Approx(640));
  CHECK(back[0][3].item<float>() == doctest::Approx(480));
}

TEST_CASE("inference letterbox as detect.py's: sides rounded half to even, padding only to the stride") {
  // 000000000034.jpg is 640x425: at 320 the ratio is 0.5, so 320 x round(212.5) = 212 (half to even), padded by
  // (320 - 212) mod 32 = 12 to 224; detect.py's scale_boxes then uses gain min(224/425, 320/640) = 0.5 and
  // pad ((320 - 320) / 2, (224 - 212.5) / 2).
  const auto lb = load_for_inference(REVKIT_ASSETS "/coco8/images/train/000000000034.jpg", 320, 32);
  CHECK(lb.image.sizes() == at::IntArrayRef({3, 224, 320}));
  CHECK(lb.shape.gain == 0.5);
  CHECK(lb.shape.pad_x == 0.0);
  CHECK(lb.shape.pad_y == 5.75);
  CHECK(lb.labels.size(0) == 0);
  auto grey_row = [&](int64_t y) { return lb.image.select(1, y).eq(114).all().item<bool>(); };
  CHECK(grey_row(5));  // the picture holds rows 6..217: round(12 / 2 - 0.1) = 6 above
  CHECK_FALSE(grey_row(6));
  CHECK_FALSE(grey_row(217));
  CHECK(grey_row(218));
  // Enlarged too (scaleup): 481x640 at 800 is round(601.25) = 601 x 800, padded by 199 mod 32 = 7 to 608.
  const auto big = load_for_inference(REVKIT_ASSETS "/coco8/images/val/000000000036.jpg", 800, 32);
  CHECK(big.image.sizes() == at::IntArrayRef({3, 800, 608}));
  CHECK(big.shape.gain == 1.25);
  CHECK(big.shape.pad_x == doctest::Approx((608 - 601.25) / 2));
}

namespace {
std::string write_prefix(const std::string& source, size_t bytes, const std::string& name) {
  const std::string out = (std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_" + name)).string();
  std::ifstream in(source, std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(out, std::ios::binary) << all.substr(0, bytes);
  return out;
}
}  // namespace

TEST_CASE("letterbox onto a wider canvas: val.py's float padding, the picture at round(pad - 0.1)") {
  // 000000000025.jpg is 640x426: at 160, 160 x ceil(106.5) = 107, on a 128 x 192 canvas pad (16, 10.5).
  at::Tensor labels = at::tensor({3.f, 0.5f, 0.5f, 1.0f, 1.0f}).view({1, 5});  // the whole picture
  const auto lb = load_letterboxed(REVKIT_ASSETS "/coco8/images/train/000000000025.jpg", 160, 128, 192, labels);
  CHECK(lb.image.sizes() == at::IntArrayRef({3, 128, 192}));
  CHECK(lb.shape.pad_x == 16.0);
  CHECK(lb.shape.pad_y == 10.5);
  CHECK(lb.shape.gain == doctest::Approx(107.0 / 426));
  CHECK(lb.image[0][9][100].item<uint8_t>() == 114);    // above: rows 10..116 hold the picture
  CHECK(lb.image[0][117][100].item<uint8_t>() == 114);  // below
  CHECK(lb.image[0][50][15].item<uint8_t>() == 114);    // left: columns 16..175
  // The label spans the picture moved by the float pad: y from 10.5 to 117.5 of 128.
  CHECK(lb.labels[0][2].item<float>() == doctest::Approx(64.0 / 128));
  CHECK(lb.labels[0][4].item<float>() == doctest::Approx(107.0 / 128));
  CHECK(lb.labels[0][3].item<float>() == doctest::Approx(160.0 / 192));
  // And back to the original pixels.
  const at::Tensor back = to_original_pixels(at::tensor({16.f, 10.5f, 176.f, 117.5f}).view({1, 4}), lb.shape);
  CHECK(back[0][2].item<float>() == doctest::Approx(160.0 * 426 / 107));  // val.py divides x by the height gain too
  CHECK(back[0][3].item<float>() == doctest::Approx(426));
}

TEST_CASE("a truncated or missing image is a clear error") {
  // Its first 3000 bytes: OpenCV decodes them as a grey-filled picture without a word.
  const std::string cut = write_prefix(REVKIT_ASSETS "/coco8/images/train/000000000009.jpg", 3000, "cut.jpg");
  CHECK_THROWS_WITH_AS(load_letterboxed(cut, 320, 320, 320, at::zeros({0, 5})),
                       (cut + ": truncated JPEG (no end-of-image marker)").c_str(), InputError);
  std::filesystem::remove(cut);
  CHECK_THROWS_WITH_AS(load_letterboxed("nope.jpg", 320, 320, 320, at::zeros({0, 5})),
                       "nope.jpg: cannot decode image (missing, truncated or not an image)", InputError);
}

TEST_CASE("an image OpenCV refuses (a header claiming 100000 x 100000 pixels) is named on one line") {
  const std::string bytes(
      "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\x01\x86\xa0\0\x01\x86\xa0\x08\x02\0\0\0\x27\x30\x9c\x9f"
      "\0\0\0\x0bIDATx\x9c\x63\x60\x80\x01\0\0\x0a\0\x01\x7f\x80\x74\x5e\0\0\0\0IEND\xae\x42\x60\x82",
      68);
  const std::string path =
      (std::filesystem::temp_directory_path() / (std::to_string(::getpid()) + "_huge.png")).string();
  std::ofstream(path, std::ios::binary) << bytes;
  std::string message;
  try {
    load_letterboxed(path, 320, 320, 320, at::zeros({0, 5}));
  } catch (const InputError& e) {
    message = e.what();
  }
  std::filesystem::remove(path);
  CHECK(message.rfind(path + ": cannot decode image: ", 0) == 0);
  CHECK(message.find("CV_IO_MAX_IMAGE_PIXELS") != std::string::npos);  // OpenCV's reason
  CHECK(message.find('\n') == std::string::npos);
  CHECK(message.find("OpenCV(") == std::string::npos);  // not its version and source file
}
