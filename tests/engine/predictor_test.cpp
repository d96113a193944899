#include "engine/predictor.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;
using namespace revkit;

TEST_CASE("listing images: a file, a folder's images sorted, errors for nothing") {
  const auto val = list_images(REVKIT_ASSETS "/coco8/images/val");
  REQUIRE(val.size() == 4);
  CHECK(std::is_sorted(val.begin(), val.end()));
  CHECK(list_images(val[0]) == std::vector<std::string>{val[0]});
  CHECK_THROWS_WITH_AS(list_images(REVKIT_ASSETS "/coco8/labels"), doctest::Contains("no images in this folder"),
                       InputError);
  CHECK_THROWS_WITH_AS(list_images("nowhere.jpg"), "nowhere.jpg: no such image or folder", InputError);
}

TEST_CASE("predictions come back in the original image's pixels, and are written as pictures and YOLO rows") {
  at::manual_seed(0);
  ModelOverrides o;
  o.num_classes = 2;
  PredictOptions po;
  po.imgsz = 64;
  po.conf = 0.0;  // an untrained model: keep whatever it finds
  po.max_det = 5;
  Predictor predictor(build_model("yolov5n", o), {"a", "b"}, po);
  const std::string image = REVKIT_ASSETS "/coco8/images/val/000000000036.jpg";
  const Prediction p = predictor.predict(image);
  CHECK(p.width == 481);
  CHECK(p.height == 640);
  REQUIRE(p.boxes.size(0) == 5);
  CHECK(p.boxes.narrow(1, 0, 4).ge(0).all().item<bool>());
  CHECK(p.boxes.select(1, 2).le(p.width).all().item<bool>());
  CHECK(p.boxes.select(1, 3).le(p.height).all().item<bool>());
  CHECK(predictor.summary(p).find(" a") != std::string::npos);

  const fs::path out = fs::temp_directory_path() / ("revkit_predict_" + std::to_string(::getpid()));
  fs::create_directories(out);
  predictor.save_image(p, out.string());
  predictor.save_txt(p, out.string());
  CHECK(fs::exists(out / "000000000036.jpg"));
  std::ifstream txt(out / "000000000036.txt");
  int rows = 0;
  for (std::string line; std::getline(txt, line); ++rows) {
    std::istringstream cells(line);
    double c, x, y, w, h, conf;
    REQUIRE(static_cast<bool>(cells >> c >> x >> y >> w >> h >> conf));
    CHECK(x >= 0);
    CHECK(x <= 1);
    CHECK(conf >= 0);
  }
  CHECK(rows == 5);
  fs::remove_all(out);
  CHECK_THROWS_AS(predictor.predict("missing.jpg"), InputError);
}
