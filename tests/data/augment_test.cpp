#include "data/augment.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

using namespace revkit;

namespace {
at::Tensor boxes_of(std::initializer_list<float> values) {
  return at::tensor(std::vector<float>(values)).view({-1, 5});
}
at::Tensor solid(int64_t h, int64_t w, uint8_t value) { return at::full({h, w, 3}, value, at::kByte); }
}  // namespace

TEST_CASE("pad_to_square: centred on grey, boxes moved by the padding") {
  ImageBoxes in{solid(2, 4, 7), boxes_of({3, 1, 0, 2, 1})};
  int64_t px = -1, py = -1;
  ImageBoxes out = pad_to_square(in, 4, &px, &py);
  CHECK(px == 0);
  CHECK(py == 1);
  CHECK(out.image[0][0][0].item<int>() == 114);
  CHECK(out.image[1][0][0].item<int>() == 7);
  CHECK(out.image[3][3][2].item<int>() == 114);
  CHECK(at::equal(out.boxes, boxes_of({3, 1, 1, 2, 2})));
}

TEST_CASE("horizontal flip mirrors pixels and boxes") {
  at::Tensor image = at::arange(12, at::kByte).view({1, 4, 3}).contiguous();
  ImageBoxes in{image, boxes_of({0, 10, 5, 30, 9})};
  in.image = at::zeros({1, 100, 3}, at::kByte);
  in.image[0][0][0] = 200;
  flip_horizontal(in);
  CHECK(in.image[0][99][0].item<int>() == 200);
  CHECK(at::allclose(in.boxes, boxes_of({0, 70, 5, 90, 9})));
}

TEST_CASE("box candidates: Ultralytics' thresholds") {
  const at::Tensor before =
      at::tensor({0.f, 0.f, 10.f, 10.f, 0.f, 0.f, 10.f, 10.f, 0.f, 0.f, 10.f, 10.f, 0.f, 0.f, 300.f, 3.f}).view({4, 4});
  // kept; under 10% of its area; 2 pixels or narrower; thinner than 1:100
  const at::Tensor after =
      at::tensor({0.f, 0.f, 9.f, 9.f, 0.f, 0.f, 3.f, 3.f, 0.f, 0.f, 2.f, 10.f, 0.f, 0.f, 300.f, 2.5f}).view({4, 4});
  const at::Tensor keep = box_candidates(before, after);
  CHECK(keep[0].item<bool>());
  CHECK_FALSE(keep[1].item<bool>());
  CHECK_FALSE(keep[2].item<bool>());
  CHECK_FALSE(keep[3].item<bool>());
}

TEST_CASE("random affine without scale or translation: the centre crop, boxes moved, cut ones dropped") {
  // A 2s canvas cropped to s: p -> p - s/2.
  const int64_t s = 64;
  at::Tensor canvas = solid(2 * s, 2 * s, 0);
  canvas.narrow(0, 40, 20).narrow(1, 42, 20).fill_(255);
  ImageBoxes in{canvas, boxes_of({5, 42, 40, 62, 60, 1, 0, 0, 20, 20})};
  AugmentRng rng(1);
  ImageBoxes out = random_affine(in, s, 0.0, 0.0, rng);
  REQUIRE(out.image.sizes() == at::IntArrayRef({s, s, 3}));
  CHECK(out.image[8][10][0].item<int>() == 255);
  CHECK(out.image[7][10][0].item<int>() == 0);
  CHECK(out.image[27][29][1].item<int>() == 255);
  CHECK(out.image[28][29][1].item<int>() == 0);
  REQUIRE(out.boxes.size(0) == 1);  // the second box lies outside the crop
  CHECK(at::allclose(out.boxes, boxes_of({5, 10, 8, 30, 28})));
}

TEST_CASE("random affine scales about the centre") {
  const int64_t s = 64;
  ImageBoxes in{solid(s, s, 50), boxes_of({0, 16, 16, 48, 48})};
  AugmentRng rng(3), copy = rng;
  const double scale = std::uniform_real_distribution<double>(0.5, 1.5)(copy);
  const double tx = std::uniform_real_distribution<double>(0.5, 0.5)(copy) * s;
  ImageBoxes out = random_affine(in, s, 0.0, 0.5, rng);
  const double x1 = scale * (16 - 32) + tx, x2 = scale * (48 - 32) + tx;
  CHECK(out.boxes[0][1].item<double>() == doctest::Approx(std::max(0.0, x1)).epsilon(1e-5));
  CHECK(out.boxes[0][3].item<double>() == doctest::Approx(std::min<double>(s, x2)).epsilon(1e-5));
}

TEST_CASE("mosaic: four pictures meet at the random centre, every box kept and clipped to the canvas") {
  const int64_t s = 32;
  std::array<ImageBoxes, 4> parts;
  for (int i = 0; i < 4; ++i)
    parts[i] = ImageBoxes{solid(s, s, static_cast<uint8_t>(10 * (i + 1))), boxes_of({float(i), 0, 0, 32, 32})};
  AugmentRng rng(7), copy = rng;
  const auto xc = static_cast<int64_t>(std::uniform_real_distribution<double>(s / 2.0, 1.5 * s)(copy));
  const auto yc = static_cast<int64_t>(std::uniform_real_distribution<double>(s / 2.0, 1.5 * s)(copy));
  ImageBoxes m = mosaic4(parts, s, rng);
  REQUIRE(m.image.sizes() == at::IntArrayRef({2 * s, 2 * s, 3}));
  CHECK(m.image[yc - 1][xc - 1][0].item<int>() == 10);
  CHECK(m.image[yc - 1][xc][0].item<int>() == 20);
  CHECK(m.image[yc][xc - 1][0].item<int>() == 30);
  CHECK(m.image[yc][xc][0].item<int>() == 40);
  REQUIRE(m.boxes.size(0) == 4);
  // Part 0 ends at the centre, part 3 starts there; both clipped to the canvas.
  auto clip = [&](int64_t v) { return static_cast<float>(std::clamp<int64_t>(v, 0, 2 * s)); };
  CHECK(at::allclose(m.boxes[0], at::tensor({0.f, clip(xc - s), clip(yc - s), clip(xc), clip(yc)})));
  CHECK(at::allclose(m.boxes[3], at::tensor({3.f, clip(xc), clip(yc), clip(xc + s), clip(yc + s)})));
}

TEST_CASE("HSV jitter: zero gains leave the image alone; value gain scales a grey pixel") {
  at::Tensor image = solid(2, 2, 100);
  AugmentRng rng(5);
  augment_hsv(image, 0, 0, 0, rng);
  CHECK(image.eq(100).all().item<bool>());
  AugmentRng copy = rng;
  std::uniform_real_distribution<double> u(-1, 1);
  u(copy), u(copy);
  const double rv = u(copy) * 0.4 + 1;
  augment_hsv(image, 0.015, 0.7, 0.4, rng);
  const int expected = static_cast<int>(std::min(255.0, 100 * rv));
  CHECK(image[0][0][0].item<int>() == expected);
  CHECK(image[1][1][2].item<int>() == expected);
}
