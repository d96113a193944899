#include "data/dataset.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/logging.h"

namespace fs = std::filesystem;
using namespace revkit;

namespace {
struct TempData {
  fs::path root = fs::temp_directory_path() / ("revkit_data_" + std::to_string(::getpid()));
  TempData() {
    fs::create_directories(root / "images");
    fs::create_directories(root / "labels");
  }
  ~TempData() { fs::remove_all(root); }
  void write(const std::string& rel, const std::string& text) const { std::ofstream(root / rel) << text; }
  std::string path(const std::string& rel) const { return (root / rel).string(); }
};
}  // namespace

TEST_CASE("the bundled coco8: data yaml, images, labels") {
  const DataConfig c = load_data_config(REVKIT_ASSETS "/coco8/coco8.yaml");
  CHECK(c.names.size() == 80);
  CHECK(c.names[0] == "person");
  REQUIRE(c.train.size() == 1);
  CHECK(fs::path(c.train[0]).filename() == "train");
  const DatasetIndex train = index_split(c.train, 80, false, c.source);
  CHECK(train.images.size() == 4);
  CHECK(train.boxes() == 13);
  CHECK(train.backgrounds == 0);
  CHECK(train.orphan_labels == 0);
  CHECK(index_split(c.val, 80, false, c.source).boxes() == 17);
}

TEST_CASE("label paths follow Ultralytics' images -> labels rule") {
  CHECK(label_path_for("/d/images/train/a.jpg") == "/d/labels/train/a.txt");
  CHECK(label_path_for("/images/x/images/b.png") == "/images/x/labels/b.txt");
}

TEST_CASE("a dataset with a background image, an orphan label, a bad row, a duplicate row and a list") {
  TempData d;
  d.write("images/a.jpg", "");
  d.write("images/b.PNG", "");
  d.write("images/bad.jpg", "");
  d.write("images/notes.md", "");
  d.write("labels/a.txt", "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n");
  d.write("labels/bad.txt", "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n");    // left out whole, as Ultralytics does
  d.write("labels/c.txt", "0 0.5 0.5 0.2 0.2\n");                         // no image c
  d.write("list.lst", "images/a.jpg\r\nimages/b.PNG\nimages/bad.jpg\n");  // a list, whatever its extension
  d.write("data.yaml", "path: .\ntrain: list.lst\nval: images\nnames:\n  0: cat\n  1: dog\n");
  const DataConfig c = load_data_config(d.path("data.yaml"));
  CHECK(c.names == std::vector<std::string>{"cat", "dog"});
  for (const auto& split : {c.train, c.val}) {
    const DatasetIndex index = index_split(split, 2, false, c.source);
    CHECK(index.images == std::vector<std::string>{d.path("images/a.jpg"), d.path("images/b.PNG")});
    CHECK(index.backgrounds == 1);
    CHECK(index.orphan_labels == 1);
    CHECK(index.boxes() == 2);
    REQUIRE(index.problems.size() == 1);
    CHECK(index.problems[0] == d.path("labels/bad.txt") + ":2: class 7 is not in 0..1");
    CHECK(index.bad_label_images == 1);
    CHECK(index.duplicates == std::vector<std::string>{d.path("labels/a.txt") + ": 1 duplicate label row removed"});
  }
  CHECK_THROWS_WITH_AS(index_split(c.val, 2, /*strict=*/true, c.source),
                       doctest::Contains("bad.txt:2: class 7 is not in 0..1"), InputError);
  d.write("only_bad.txt", "images/bad.jpg\n");
  CHECK_THROWS_WITH_AS(index_split({d.path("only_bad.txt")}, 2, false, c.source),
                       doctest::Contains("data.yaml: every one of the 1 images has a bad label row (first: "),
                       InputError);
}

TEST_CASE("folders as Ultralytics' glob reads them: hidden entries left out, linked folders followed") {
  TempData d;
  d.write("images/a.jpg", "");
  fs::create_directories(d.root / "images" / ".ipynb_checkpoints");
  d.write("images/.ipynb_checkpoints/a-checkpoint.jpg", "");
  d.write("images/._a.jpg", "");  // macOS' resource fork beside a copied file
  fs::create_directories(d.root / "elsewhere");
  d.write("elsewhere/b.jpg", "");
  fs::create_directory_symlink(d.root / "elsewhere", d.root / "images" / "linked");
  fs::create_directory_symlink(d.root / "images", d.root / "images" / "again");  // a loop: read once
  const DatasetIndex index = index_split({d.path("images")}, 1, false, "data.yaml");
  CHECK(index.images == std::vector<std::string>{d.path("images/a.jpg"), d.path("images/linked/b.jpg")});
  // A binary file given as a list is named, not read line by line.
  d.write("weights.pt", std::string("PK\0\x03\x04 not text", 15));
  CHECK_THROWS_WITH_AS(index_split({d.path("weights.pt")}, 1, false, "data.yaml"),
                       doctest::Contains("weights.pt' is neither a folder nor a list of images (it holds binary data)"),
                       InputError);
}

TEST_CASE("data yamls as Ultralytics reads them: an empty split, `validation`, Roboflow's ../ paths") {
  TempData d;
  d.write("images/a.jpg", "");
  d.write("data.yaml", "train: images\nvalidation: images\ntest: ''\nnames: [a]\n");
  const DataConfig c = load_data_config(d.path("data.yaml"));
  CHECK(c.val == std::vector<std::string>{d.path("images")});
  CHECK(c.test.empty());
  // Roboflow writes the yaml beside train/ and valid/, naming them from one folder up.
  fs::create_directories(d.root / "export" / "train" / "images");
  d.write("export/rf.yaml", "train: ../train/images\nval: ../train/images\nnames: [a]\n");
  CHECK(load_data_config(d.path("export/rf.yaml")).train == std::vector<std::string>{d.path("export/train/images")});
  d.write("export/rf.yaml", "train: ../nowhere\nval: train/images\nnames: [a]\n");  // not there either: as written
  CHECK(load_data_config(d.path("export/rf.yaml")).train == std::vector<std::string>{d.path("nowhere")});
}

TEST_CASE("a split without a single label is warned about, naming where labels are read from") {
  TempData d;
  d.write("images/a.jpg", "");
  const DatasetIndex index = index_split({d.path("images")}, 1, false, "data.yaml");
  std::ostringstream log;
  {
    LogCapture capture(log);
    warn_about_labels(index, "data.yaml", "train");
  }
  CHECK(log.str().find("data.yaml train: no labels: every image is a background (labels are read from " +
                       d.path("labels/a.txt")) != std::string::npos);
}

TEST_CASE("data that leaves nothing to train on is a clear error") {
  TempData d;
  d.write("data.yaml", "train: missing\nval: images\nnames: [a]\n");
  const DataConfig c = load_data_config(d.path("data.yaml"));
  const std::string expected =
      "data.yaml: split entry '" + d.path("missing") + "' is neither a folder nor a list of images";
  CHECK_THROWS_WITH_AS(index_split(c.train, 1, false, c.source), doctest::Contains(expected.c_str()), InputError);
  CHECK_THROWS_WITH_AS(index_split(c.val, 1, false, c.source), doctest::Contains("data.yaml: no images found in"),
                       InputError);
  d.write("bad.yaml", "train: images\nval: images\n");
  CHECK_THROWS_WITH(load_data_config(d.path("bad.yaml")), doctest::Contains("bad.yaml: 'names' is missing"));
  d.write("bad.yaml", "train: images\nnames: [a]\n");
  CHECK_THROWS_WITH(load_data_config(d.path("bad.yaml")), doctest::Contains("bad.yaml: 'val' is missing"));
  d.write("bad.yaml", "train: images\nval: images\nnames: {0: a, 2: b}\n");
  CHECK_THROWS_WITH(load_data_config(d.path("bad.yaml")), doctest::Contains("'names' keys must be 0..1, got '2'"));
}

TEST_CASE("nc: alone it names the classes, beside names it must agree (Ultralytics' rule)") {
  TempData d;
  d.write("data.yaml", "train: images\nval: images\nnc: 3\n");
  CHECK(load_data_config(d.path("data.yaml")).names == std::vector<std::string>{"class_0", "class_1", "class_2"});
  d.write("data.yaml", "train: images\nval: images\nnc: 2\nnames: [cat, dog]\n");
  CHECK(load_data_config(d.path("data.yaml")).names == std::vector<std::string>{"cat", "dog"});
  d.write("data.yaml", "train: images\nval: images\nnc: 3\nnames: [cat, dog]\n");
  CHECK_THROWS_WITH_AS(load_data_config(d.path("data.yaml")),
                       doctest::Contains("data.yaml: 'nc' is 3 but 'names' has 2 classes"), InputError);
  for (const char* bad : {"0", "-1", "2.5", "two", "[2]"}) {
    d.write("data.yaml", std::string("train: images\nval: images\nnc: ") + bad + "\n");
    CHECK_THROWS_WITH_AS(load_data_config(d.path("data.yaml")),
                         doctest::Contains("data.yaml: 'nc' must be a number of classes from 1 to 100000, got"),
                         InputError);
  }
}

TEST_CASE("a folder where a label file belongs is an error, not a background image") {
  TempData d;
  d.write("images/a.jpg", "");
  fs::create_directories(d.root / "labels" / "a.txt");
  CHECK_THROWS_WITH_AS(index_split({d.path("images")}, 1, false, "data.yaml"),
                       doctest::Contains((d.path("labels/a.txt") + ": the label file of " + d.path("images/a.jpg") +
                                          " is not a regular file")
                                             .c_str()),
                       InputError);
}

TEST_CASE("a box of zero width or height is removed, its image kept (Ultralytics keeps the row, unmatchable)") {
  TempData d;
  d.write("images/a.jpg", "");
  d.write("labels/a.txt", "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0 0.2\n");
  const DatasetIndex index = index_split({d.path("images")}, 1, false, "data.yaml");
  CHECK(index.images.size() == 1);
  CHECK(index.boxes() == 1);
  CHECK(index.problems.empty());
  CHECK(index.duplicates ==
        std::vector<std::string>{d.path("labels/a.txt") + ": 1 box of zero width or height removed"});
}
