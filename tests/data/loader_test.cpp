#include "data/loader.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "core/error.h"
#include "data/images.h"
#include "gpu.h"

namespace fs = std::filesystem;
using namespace revkit;

namespace {
DatasetIndex coco8_train() {
  const DataConfig c = load_data_config(REVKIT_ASSETS "/coco8/coco8.yaml");
  return index_split(c.train, 80, false, c.source);
}
LoaderOptions training_options(int64_t workers) {
  LoaderOptions o;
  o.imgsz = 96;
  o.batch = 3;
  o.workers = workers;
  o.augment = true;
  o.shuffle = true;
  o.seed = 11;
  return o;
}
}  // namespace

// coco8's train images are 640x480, 640x426, 640x428 and 640x425: in aspect-ratio order 425, 426 | 428, 480.
TEST_CASE("rect batches as val.py makes them: aspect-ratio order, each batch its own multiple of the stride") {
  LoaderOptions o;
  o.imgsz = 160;
  o.batch = 2;
  o.rect = true;
  DetectionLoader loader(coco8_train(), o);
  loader.start_epoch(0);
  auto first = loader.next(), second = loader.next();
  REQUIRE(first);
  REQUIRE(second);
  CHECK(fs::path(first->paths[0]).filename() == "000000000034.jpg");
  CHECK(fs::path(second->paths[1]).filename() == "000000000009.jpg");
  // ceil(426/640 * 160/32 + 0.5) * 32 = 128 high, ceil(160/32 + 0.5) * 32 = 192 wide; then ceil(3.75 + 0.5) * 32.
  CHECK(first->images.sizes() == at::IntArrayRef({2, 3, 128, 192}));
  CHECK(second->images.sizes() == at::IntArrayRef({2, 3, 160, 192}));
  // The 640x425 image resized to 160x107 (rounded up), padded by (192 - 160) / 2 and (128 - 107) / 2.
  CHECK(first->shapes[0].pad_x == 16.0);
  CHECK(first->shapes[0].pad_y == 10.5);
  CHECK(first->images[0][0][9][100].item<int64_t>() == 114);    // above the picture: grey
  CHECK(first->images[0][0][117][100].item<int64_t>() == 114);  // below it (rows 10..116)
  CHECK(first->images[0][0][10][100].item<int64_t>() != 114);
  // Targets normalised to the batch's width and height, inside the picture.
  const at::Tensor rows = first->targets.index({first->targets.select(1, 0) == 0});
  REQUIRE(rows.size(0) > 0);
  const at::Tensor y_px = rows.select(1, 3) * 128;
  CHECK(y_px.min().item<double>() >= 10.5);
  CHECK(y_px.max().item<double>() <= 117.5);
  CHECK_FALSE(loader.next());
}

TEST_CASE("validation batches: letterboxed images and normalised targets with their image index") {
  LoaderOptions o;
  o.imgsz = 160;
  o.batch = 3;
  DatasetIndex index = coco8_train();
  DetectionLoader loader(index, o);
  CHECK(loader.batches() == 2);
  loader.start_epoch(0);
  auto first = loader.next();
  REQUIRE(first);
  CHECK(first->images.sizes() == at::IntArrayRef({3, 3, 160, 160}));
  CHECK((first->images.scalar_type() == at::kByte));
  CHECK(first->paths[0] == index.images[0]);
  // Same pixels, labels and shape as the letterbox on its own.
  const LetterboxedImage lb = load_letterboxed(index.images[1], 160, 160, 160, index.labels[1]);
  CHECK(at::equal(first->images[1], lb.image));
  const at::Tensor rows = first->targets.index({first->targets.select(1, 0) == 1});
  CHECK(at::equal(rows.narrow(1, 1, 5), lb.labels));
  CHECK(first->shapes[1].pad_y == lb.shape.pad_y);
  CHECK(first->shapes[1].gain == lb.shape.gain);
  CHECK(first->shapes[1].width == lb.shape.width);
  auto second = loader.next();
  REQUIRE(second);
  CHECK(second->images.size(0) == 1);  // 4 images in batches of 3
  CHECK_FALSE(loader.next());
}

TEST_CASE("augmented batches depend on the seed and epoch, not on the number of workers") {
  DetectionLoader serial(coco8_train(), training_options(0));
  DetectionLoader threaded(coco8_train(), training_options(2));
  for (int64_t epoch : {0, 1}) {
    serial.start_epoch(epoch);
    threaded.start_epoch(epoch);
    for (int b = 0; b < 2; ++b) {
      auto x = serial.next(), y = threaded.next();
      REQUIRE(x);
      REQUIRE(y);
      CHECK(x->paths == y->paths);
      CHECK(at::equal(x->images, y->images));
      CHECK(at::equal(x->targets, y->targets));
      // Every target inside the picture, with a positive size.
      CHECK(x->targets.narrow(1, 2, 4).ge(0).all().item<bool>());
      CHECK(x->targets.narrow(1, 2, 2).le(1).all().item<bool>());
      CHECK(x->targets.narrow(1, 4, 2).gt(0).all().item<bool>());
    }
  }
  serial.start_epoch(0);
  const auto e0 = serial.next();
  serial.start_epoch(1);
  const auto e1 = serial.next();
  CHECK_FALSE(at::equal(e0->images, e1->images));
}

TEST_CASE("closing mosaic: from the given epoch on, samples are those of a loader without mosaic") {
  LoaderOptions closing = training_options(0), never = training_options(0), plain = training_options(0);
  closing.no_mosaic_from_epoch = 2;
  plain.augment_options.mosaic = 0.0;
  DetectionLoader a(coco8_train(), closing), b(coco8_train(), never), c(coco8_train(), plain);
  for (int64_t image = 0; image < 4; ++image) {
    CHECK(at::equal(a.sample(image, 1).first, b.sample(image, 1).first));  // before: mosaic as always
    const auto closed = a.sample(image, 2);
    CHECK(at::equal(closed.first, c.sample(image, 2).first));
    CHECK(at::equal(closed.second, c.sample(image, 2).second));
    CHECK_FALSE(at::equal(closed.first, b.sample(image, 2).first));
  }
}

TEST_CASE("an epoch restarted midway (as a resumed run does) gives the same batches") {
  DetectionLoader loader(coco8_train(), training_options(2));
  loader.start_epoch(3);
  auto a = loader.next();
  loader.start_epoch(3);  // stops the workers that were prefetching
  auto b = loader.next();
  CHECK(at::equal(a->images, b->images));
}

TEST_CASE("data-parallel shards: equal sizes, every image read by some rank") {
  std::set<std::string> seen;
  for (int64_t rank = 0; rank < 3; ++rank) {
    LoaderOptions o = training_options(0);
    o.augment = false;
    o.batch = 8;
    o.rank = rank;
    o.world_size = 3;
    DetectionLoader loader(coco8_train(), o);
    loader.start_epoch(0);
    auto batch = loader.next();
    REQUIRE(batch);
    CHECK(batch->images.size(0) == 2);  // ceil(4 / 3)
    seen.insert(batch->paths.begin(), batch->paths.end());
  }
  CHECK(seen.size() == 4);

  // Validation shards: every image exactly once, no padding.
  int64_t total = 0;
  for (int64_t rank = 0; rank < 3; ++rank) {
    LoaderOptions o = training_options(0);
    o.augment = false;
    o.shuffle = false;
    o.batch = 8;
    o.rank = rank;
    o.world_size = 3;
    o.pad_shards = false;
    DetectionLoader loader(coco8_train(), o);
    loader.start_epoch(0);
    while (auto batch = loader.next()) total += batch->images.size(0);
  }
  CHECK(total == 4);
}

TEST_CASE("the smallest batch of an epoch: the last, whatever is left of the shard") {
  auto smallest = [](int64_t batch, int64_t world, bool pad) {
    LoaderOptions o = training_options(0);
    o.batch = batch;
    o.world_size = world;
    o.rank = world - 1;
    o.pad_shards = pad;
    DetectionLoader loader(coco8_train(), o);
    // What the epoch hands out, batch by batch.
    int64_t least = std::numeric_limits<int64_t>::max();
    loader.start_epoch(0);
    while (auto b = loader.next()) least = std::min<int64_t>(least, b->images.size(0));
    CHECK(loader.smallest_batch() == least);
    return loader.smallest_batch();
  };
  CHECK(smallest(3, 1, true) == 1);   // 4 images: 3 + 1
  CHECK(smallest(2, 1, true) == 2);   // 2 + 2
  CHECK(smallest(8, 1, true) == 4);   // one batch of all four
  CHECK(smallest(2, 3, true) == 2);   // 2 images a rank, padded with one of another rank
  CHECK(smallest(2, 3, false) == 1);  // the last rank's unpadded shard: the order's third image alone
  CHECK(smallest(8, 3, false) == 1);
}

TEST_CASE("unreadable images are dropped with their labels and named, or are an error under strict") {
  const fs::path dir = fs::temp_directory_path() / ("revkit_loader_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cut = (dir / "cut.jpg").string();
  {
    std::ifstream in(REVKIT_ASSETS "/coco8/images/train/000000000009.jpg", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, 3000);  // decodes as grey, but its end marker is gone
  }
  DatasetIndex index = coco8_train();
  index.images.insert(index.images.begin() + 1, cut);
  index.labels.insert(index.labels.begin() + 1, at::ones({2, 5}));
  const std::string missing = (dir / "listed_but_missing.jpg").string();  // a .txt split may name one
  index.images.push_back(missing);
  index.labels.push_back(at::zeros({0, 5}));
  const std::string tiny = (dir / "tiny.png").string();  // 1x1 pixels: Ultralytics leaves out images below 10
  std::ofstream(tiny, std::ios::binary) << std::string(
      "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"
      "\0\0\0\x0aIDATx\x9c\x63\0\x01\0\0\x05\0\x01\x0d\x0a\x2d\xb4\0\0\0\0IEND\xae\x42\x60\x82",
      67);
  index.images.push_back(tiny);
  index.labels.push_back(at::ones({1, 5}));
  index.backgrounds = 1;  // as index_split counts it: no label file
  DatasetIndex strict_copy = index;
  const auto dropped = drop_unreadable_images(index, false, 2);
  REQUIRE(dropped.size() == 3);
  CHECK(dropped[0] == cut + ": truncated JPEG (no end-of-image marker)");
  CHECK(dropped[1].rfind(missing + ": ", 0) == 0);
  CHECK(dropped[2] == tiny + ": the image is 1x1 pixels, below 10 on a side");
  CHECK(index.images.size() == 4);
  CHECK(index.labels.size() == 4);
  CHECK(at::equal(index.labels[1], coco8_train().labels[1]));
  CHECK(index.backgrounds == 0);  // the missing image is not counted as a background
  CHECK_THROWS_WITH_AS(drop_unreadable_images(strict_copy, true), doctest::Contains("cut.jpg: truncated JPEG"),
                       InputError);

  DatasetIndex only_bad;
  only_bad.images = {cut};
  only_bad.labels = {at::zeros({0, 5})};
  CHECK_THROWS_WITH_AS(drop_unreadable_images(only_bad, false), doctest::Contains("no readable image among 1"),
                       InputError);
  fs::remove_all(dir);
}

REVKIT_GPU_TEST_CASE("GPU: pinned batches hold the same images and targets, in page-locked memory") {
  REQUIRE(at::hasCUDA());
  LoaderOptions pinned = training_options(2), plain = training_options(2);
  pinned.pin_memory = true;
  DetectionLoader a(coco8_train(), pinned), b(coco8_train(), plain);
  a.start_epoch(0);
  b.start_epoch(0);
  auto x = a.next(), y = b.next();
  REQUIRE(x);
  REQUIRE(y);
  CHECK(x->images.is_pinned());
  CHECK(x->targets.is_pinned());
  CHECK(at::equal(x->images, y->images));
  CHECK(at::equal(x->targets, y->targets));
  const at::Tensor on_gpu = x->images.to(c10::Device(c10::kCUDA, 0), /*non_blocking=*/true);
  CHECK(at::equal(on_gpu.cpu(), y->images));
}

TEST_CASE("check_loader_workers: 0 to kMaxLoaderWorkers, named otherwise") {
  check_loader_workers(0);
  check_loader_workers(kMaxLoaderWorkers);
  CHECK_THROWS_WITH_AS(check_loader_workers(-1), "--workers must be between 0 and 1024, got -1", InputError);
  CHECK_THROWS_WITH_AS(check_loader_workers(kMaxLoaderWorkers + 1), "--workers must be between 0 and 1024, got 1025",
                       InputError);
}
