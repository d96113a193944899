#include "engine/results_csv.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace revkit;

TEST_CASE("results.csv: Ultralytics' header, integer epochs, 6 significant digits, rows read back before an epoch") {
  std::vector<std::vector<double>> rows;
  for (int e = 0; e < 3; ++e) {
    std::vector<double> r(results_columns().size(), 0.0);
    r[0] = e;
    r[1] = 0.1234567 + e;
    rows.push_back(r);
  }
  const std::string text = results_csv(rows);
  CHECK(text.rfind("epoch,train/box_loss,train/obj_loss,train/cls_loss,metrics/precision,metrics/recall,"
                   "metrics/mAP_0.5,metrics/mAP_0.5:0.95,val/box_loss,val/obj_loss,val/cls_loss,x/lr0,x/lr1,x/lr2\n",
                   0) == 0);
  CHECK(text.find("\n1,1.12346,0,") != std::string::npos);
  const fs::path path = fs::temp_directory_path() / ("revkit_results_" + std::to_string(::getpid()) + ".csv");
  std::ofstream(path) << text;
  const auto back = read_results_csv(path.string(), 2);
  REQUIRE(back.size() == 2);
  CHECK(back[1][0] == 1);
  CHECK(back[1][1] == doctest::Approx(1.12346));
  CHECK(read_results_csv((path.string() + ".missing"), 5).empty());
  fs::remove(path);
}

TEST_CASE("results.csv names the head's losses") {
  const auto columns = results_columns({"box_loss", "cls_loss", "dfl_loss"});
  REQUIRE(columns.size() == 14);
  CHECK(columns[1] == "train/box_loss");
  CHECK(columns[3] == "train/dfl_loss");
  CHECK(columns[8] == "val/box_loss");
  CHECK(columns[9] == "val/cls_loss");
  CHECK(results_csv({}, {"a", "b", "c"}).rfind("epoch,train/a,train/b,train/c,metrics/precision", 0) == 0);
}
