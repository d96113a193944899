#include "eval/coco.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/dataset.h"

namespace fs = std::filesystem;
using namespace revkit;

TEST_CASE("COCO's 80 names and their 91-id categories") {
  const DataConfig coco8 = load_data_config(REVKIT_ASSETS "/coco8/coco8.yaml");
  CHECK(is_coco_names(coco8.names));
  CHECK_FALSE(is_coco_names({"cat", "dog"}));
  CHECK(coco80_to_91(0) == 1);
  CHECK(coco80_to_91(11) == 13);  // stop sign: COCO skips id 12
  CHECK(coco80_to_91(26) == 31);  // handbag
  CHECK(coco80_to_91(79) == 90);
}

TEST_CASE("COCO results JSON: numeric image ids from file stems, xywh boxes, mapped categories") {
  const std::string path =
      (fs::temp_directory_path() / ("revkit_dets_" + std::to_string(::getpid()) + ".json")).string();
  std::vector<ImageDetections> dets;
  dets.push_back({"a/images/000000000042.jpg", at::tensor({10.0, 20.0, 40.0, 60.0, 0.912345678, 11.0}).view({1, 6})});
  dets.push_back({"b/cat_photo.png", at::tensor({1.0, 2.0, 3.0, 5.0, 0.5, 0.0}).view({1, 6})});
  write_coco_detections(path, dets, true);
  nlohmann::json j;
  std::ifstream(path) >> j;
  REQUIRE(j.size() == 2);
  CHECK(j[0]["image_id"] == 42);
  CHECK(j[0]["category_id"] == 13);
  CHECK(j[0]["bbox"] == nlohmann::json({10.0, 20.0, 30.0, 40.0}));
  CHECK(j[0]["score"].get<double>() == doctest::Approx(0.91235));
  CHECK(j[1]["image_id"] == "cat_photo");
  write_coco_detections(path, dets, false);
  std::ifstream(path) >> j;
  CHECK(j[0]["category_id"] == 11);
  fs::remove(path);
}
