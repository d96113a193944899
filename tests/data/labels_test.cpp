#include "data/labels.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "core/error.h"

using namespace revkit;

TEST_CASE("YOLO labels: good rows, background, CRLF and a missing final newline") {
  auto p = parse_yolo_labels("0 0.5 0.5 0.2 0.4\r\n3 0.1 0.9 0.05 0.1", "a.txt", 80);
  CHECK(p.problems.empty());
  REQUIRE(p.rows.size(0) == 2);
  CHECK(p.rows[1][0].item<float>() == 3.0f);
  CHECK(p.rows[1][2].item<float>() == doctest::Approx(0.9));
  auto empty = parse_yolo_labels("", "bg.txt", 80);
  CHECK(empty.rows.sizes() == at::IntArrayRef({0, 5}));
  CHECK(empty.problems.empty());
  at::Tensor corners = yolo_to_corners(p.rows, 100, 50);
  CHECK(corners[0][1].item<float>() == doctest::Approx(40.0));  // x1 = (0.5 - 0.1) * 100
  CHECK(corners[0][4].item<float>() == doctest::Approx(35.0));  // y2 = (0.5 + 0.2) * 50
}

TEST_CASE("YOLO labels: each bad row is skipped and named by file and line") {
  const std::string text =
      "0 0.5 0.5 0.2\n"        // 4 columns
      "1 0.5 nan 0.2 0.2\n"    // NaN
      "80 0.5 0.5 0.2 0.2\n"   // class >= nc
      "2 1.5 0.5 0.2 0.2\n"    // centre outside [0, 1]
      "2 0.5 0.5 -0.1 0.2\n"   // negative size
      "1.5 0.5 0.5 0.2 0.2\n"  // fractional class
      "2 0.5 0.5 0.0 0.2\n"    // zero size: accepted by Ultralytics, but no prediction can match it
      "5 0.5 0.5 0.2 0.2\n";   // good
  auto p = parse_yolo_labels(text, "b.txt", 80);
  CHECK(p.rows.size(0) == 1);
  CHECK(p.empty_boxes == 1);
  REQUIRE(p.problems.size() == 6);
  CHECK(p.problems[0] ==
        "b.txt:1: expected 5 columns (class x y w h) or a polygon (class x1 y1 x2 y2 x3 y3 ...), got 4");
  CHECK(p.problems[1].find("b.txt:2: a value is not a finite number") == 0);
  CHECK(p.problems[2] == "b.txt:3: class 80 is not in 0..79");
  CHECK(p.problems[3].find("b.txt:4: coordinates must be normalised") == 0);
  CHECK(p.problems[4].find("b.txt:5: coordinates must be normalised") == 0);
  CHECK(p.problems[5].find("b.txt:6: class 1.5") == 0);
  CHECK_THROWS_WITH_AS(read_yolo_labels("missing.txt"), "missing.txt: cannot open label file", InputError);
}

TEST_CASE("YOLO labels: numbers are decimal, as Python's float() reads them, not hexadecimal") {
  auto p = parse_yolo_labels("0x1 0.5 0.5 0.2 0.2\n1 0x0.8p0 0.5 0.2 0.2\n2 5e-1 +0.5 .2 2E-1\n", "h.txt", 80);
  REQUIRE(p.rows.size(0) == 1);
  CHECK(p.rows[0][0].item<float>() == 2);
  CHECK(p.rows[0][1].item<float>() == 0.5f);
  REQUIRE(p.problems.size() == 2);
  CHECK(p.problems[0] == "h.txt:1: a value is not a finite number: 0x1 0.5 0.5 0.2 0.2");
  CHECK(p.problems[1].find("h.txt:2: a value is not a finite number") == 0);
}

TEST_CASE("YOLO labels: a polygon row becomes the box around its points") {
  // A triangle (0.2, 0.3), (0.6, 0.1), (0.4, 0.7): x in [0.2, 0.6], y in [0.1, 0.7].
  auto p = parse_yolo_labels("3 0.2 0.3 0.6 0.1 0.4 0.7\n1 0.5 0.5 0.2 0.2\n", "seg.txt", 80);
  CHECK(p.problems.empty());
  REQUIRE(p.rows.size(0) == 2);
  CHECK(p.rows[0][0].item<float>() == 3.0f);
  CHECK(p.rows[0][1].item<float>() == doctest::Approx(0.4));  // centre x
  CHECK(p.rows[0][2].item<float>() == doctest::Approx(0.4));  // centre y
  CHECK(p.rows[0][3].item<float>() == doctest::Approx(0.4));  // width
  CHECK(p.rows[0][4].item<float>() == doctest::Approx(0.6));  // height
  CHECK(p.rows[1][3].item<float>() == doctest::Approx(0.2));  // a box row beside it stays a box
  auto bad = parse_yolo_labels(
      "0 0.2 0.3 0.6 0.1 0.4 1.7\n"       // a point outside the image
      "0 0.2 0.3 0.2 0.5 0.2 0.9\n"       // all on one vertical line: a box of no width, removed
      "0 0.2 0.3 0.6 0.1 0.4 0.7 0.5\n",  // an odd coordinate count
      "bad.txt", 80);
  CHECK(bad.rows.size(0) == 0);
  CHECK(bad.empty_boxes == 1);
  REQUIRE(bad.problems.size() == 2);
  CHECK(bad.problems[0].find("bad.txt:1: polygon points must be normalised to [0, 1]") == 0);
  CHECK(bad.problems[1].find("bad.txt:3: expected 5 columns") == 0);
}

TEST_CASE("YOLO labels: rows equal to an earlier row are removed and counted") {
  auto p =
      parse_yolo_labels("0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n0 0.50 0.5 0.2 0.2\n", "dup.txt", 80);
  CHECK(p.problems.empty());
  CHECK(p.duplicates == 2);
  REQUIRE(p.rows.size(0) == 2);
  CHECK(p.rows[0][0].item<float>() == 0.0f);
  CHECK(p.rows[1][0].item<float>() == 1.0f);  // the same box with another class is not a duplicate
}

TEST_CASE("COCO instances: categories to YOLO classes, crowds left out") {
  const auto gt = read_coco_instances(std::string(REVKIT_ASSETS) + "/coco128/annotations/instances_train2017.json");
  CHECK(gt.category_ids.size() == 80);
  CHECK(gt.category_ids.front() == 1);
  CHECK(gt.category_ids.back() == 90);
  CHECK(gt.crowd == 10);
  int64_t boxes = 0;
  for (const auto& [id, l] : gt.labels) boxes += l.size(0);
  CHECK(boxes == 929);
  CHECK(gt.file_names.size() == 128);
}
