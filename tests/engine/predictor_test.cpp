#include "engine/predictor.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/weights_file.h"

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

// The boxes YOLOv5 v7.0's detect.py draws with Ultralytics' own yolov5n (tests/fixtures/ultralytics/
// make_detect.py: six coco128 images of different shapes, at 640 and 256, confidence threshold 0.05).
TEST_CASE("revkit detect draws the boxes detect.py draws with the same weights") {
  const std::string fixtures = std::string(REVKIT_TEST_FIXTURES) + "/ultralytics/";
  std::vector<std::string> names;
  DetectionModel model = load_detector("", fixtures + "yolov5n_coco128.pt", &names);
  for (const int64_t imgsz : {640, 256}) {
    std::ifstream in(fixtures + "detect_" + std::to_string(imgsz) + ".json");
    const auto reference = nlohmann::json::parse(in);
    PredictOptions po;
    po.imgsz = imgsz;
    po.conf = reference["conf"];
    po.iou = reference["iou"];
    Predictor predictor(model, names, po);
    int64_t compared = 0;
    for (const auto& [image, expected] : reference["images"].items()) {
      const Prediction p = predictor.predict(REVKIT_ASSETS "/coco128/images/train2017/" + image);
      CHECK(p.width == expected["width"]);
      // A box whose confidence is this close to the threshold may fall on either side of it.
      auto borderline = [&](double conf) { return std::abs(conf - po.conf) < 5e-4; };
      std::vector<bool> used(p.boxes.size(0), false);
      for (const auto& box : expected["boxes"]) {
        if (borderline(box[4])) continue;
        bool found = false;
        for (int64_t k = 0; k < p.boxes.size(0) && !found; ++k) {
          const at::Tensor b = p.boxes[k].to(at::kDouble);
          bool same = !used[k] && b[5].item<double>() == box[5].get<double>() &&
                      std::abs(b[4].item<double>() - box[4].get<double>()) < 1e-4;
          for (int c = 0; c < 4 && same; ++c) same = std::abs(b[c].item<double>() - box[c].get<double>()) <= 1.0;
          if (same) used[k] = found = true;
        }
        CHECK_MESSAGE(found, image << " at " << imgsz << ": no box like " << box.dump());
        ++compared;
      }
      for (int64_t k = 0; k < p.boxes.size(0); ++k)
        if (!used[k]) CHECK_MESSAGE(borderline(p.boxes[k][4].item<double>()), image << ": an extra box");
    }
    CHECK(compared >= (imgsz == 640 ? 150 : 25));
  }
}
