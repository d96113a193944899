#include "engine/train_options.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;
using namespace revkit;

TEST_CASE("training options round-trip through JSON, backbone settings and hyperparameters included") {
  TrainOptions o;
  o.model = "yolov5n";
  o.data = "a \"quoted\" path.yaml";
  o.epochs = 7;
  o.seed = 42;
  o.backbone.memory_mode = reversible::MemoryMode::Auto;
  o.backbone.recompute_chunks = 2;
  o.backbone.memory_budget_mb = 512.5;
  o.backbone.keep_columns = 1;
  o.backbone.keep_levels = 2;
  o.backbone.drop_path = 0.25;
  o.schedule.lr0 = 0.02;
  o.schedule.cosine = true;
  o.augment_options.mosaic = 0.5;
  o.close_mosaic = 2;
  o.stop_after_epochs = 3;  // of this process only
  const nlohmann::json j = o.to_json();
  CHECK(j["backbone"]["memory_mode"] == "auto");
  CHECK(j["backbone"]["store_every"].is_null());
  CHECK_FALSE(j.contains("stop_after_epochs"));
  const TrainOptions r = TrainOptions::from_json(j, "state");
  CHECK(r.to_json() == j);
  CHECK(r.backbone.memory_mode == reversible::MemoryMode::Auto);
  CHECK(r.backbone.recompute_chunks == 2);
  CHECK(r.backbone.memory_budget_mb == 512.5);
  CHECK(r.backbone.keep_columns == 1);
  CHECK(r.backbone.keep_levels == 2);
  CHECK_FALSE(r.backbone.store_every.has_value());
  CHECK(r.schedule.cosine);
  CHECK(r.augment_options.mosaic == 0.5);
  CHECK(r.close_mosaic == 2);
  CHECK(r.stop_after_epochs == 0);

  // Missing fields keep their defaults; wrong types and unknown memory modes are errors naming the source.
  CHECK(TrainOptions::from_json({{"epochs", 3}}, "s").imgsz == 640);
  CHECK_THROWS_WITH_AS(TrainOptions::from_json({{"epochs", "three"}}, "s.state"),
                       doctest::Contains("s.state: the saved training options cannot be read"), InputError);
  CHECK_THROWS_WITH_AS(TrainOptions::from_json({{"backbone", {{"memory_mode", "half"}}}}, "s"),
                       doctest::Contains("unknown memory mode 'half'"), InputError);
}

TEST_CASE("args.yaml: one key per line, nested settings indented, strings quoted") {
  TrainOptions o;
  o.data = "data.yaml";
  o.backbone.memory_mode = reversible::MemoryMode::Full;
  const fs::path path = fs::temp_directory_path() / ("revkit_args_" + std::to_string(::getpid()) + ".yaml");
  o.write_yaml(path.string());
  std::ifstream in(path);
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  CHECK(text.find("\ndata: \"data.yaml\"\n") != std::string::npos);
  CHECK(text.find("\nbackbone:\n") != std::string::npos);
  CHECK(text.find("\n  memory_mode: \"full\"\n") != std::string::npos);
  CHECK(text.find("\nschedule:\n") != std::string::npos);
  CHECK(text.find("\n  lr0: 0.01\n") != std::string::npos);
  fs::remove(path);
}

TEST_CASE("a data-parallel batch splits evenly over the ranks") {
  CHECK_NOTHROW(revkit::check_batch_splits(8, 4));
  CHECK_NOTHROW(revkit::check_batch_splits(3, 1));
  CHECK_THROWS_WITH_AS(revkit::check_batch_splits(3, 2), "--batch 3 must be a multiple of the 2 ranks",
                       revkit::InputError);
}
