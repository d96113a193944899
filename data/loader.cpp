#include "data/loader.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <numeric>

#include "core/error.h"
#include "data/images.h"

namespace revkit {
namespace {

// Corners in pixels of a letterboxed or resized picture from normalised (class, x, y, w, h) rows.
at::Tensor to_pixel_corners(const at::Tensor& rows, double width, double height) {
  at::Tensor out = rows.to(at::kFloat).clone();
  if (out.size(0) == 0) return at::zeros({0, 5});
  at::Tensor x = rows.select(1, 1), y = rows.select(1, 2), w = rows.select(1, 3), h = rows.select(1, 4);
  out.select(1, 1).copy_((x - w / 2) * width);
  out.select(1, 2).copy_((y - h / 2) * height);
  out.select(1, 3).copy_((x + w / 2) * width);
  out.select(1, 4).copy_((y + h / 2) * height);
  return out;
}

// Back to normalised (class, x, y, w, h), clipped to the square.
at::Tensor to_normalised_centres(const at::Tensor& boxes, double size) {
  if (boxes.size(0) == 0) return at::zeros({0, 5});
  at::Tensor c = boxes.narrow(1, 1, 4).clamp(0, size - 1e-3) / size;
  at::Tensor x1 = c.select(1, 0), y1 = c.select(1, 1), x2 = c.select(1, 2), y2 = c.select(1, 3);
  return at::stack({boxes.select(1, 0), (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1}, 1);
}

AugmentRng sample_rng(uint64_t seed, int64_t epoch, int64_t image) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(image), 0x5eedu};
  return AugmentRng(seq);
}

}  // namespace

std::vector<std::string> drop_unreadable_images(DatasetIndex& index, bool strict, int64_t threads) {
  const int64_t n = static_cast<int64_t>(index.images.size());
  std::vector<std::string> problem(n);
  std::atomic<int64_t> next{0};
  auto check = [&] {
    for (int64_t i = next++; i < n; i = next++) {
      try {
        decode_image(index.images[i], 64);
      } catch (const InputError& e) {
        problem[i] = e.what();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < std::max<int64_t>(1, threads); ++t) pool.emplace_back(check);
  check();
  for (auto& t : pool) t.join();

  std::vector<std::string> dropped;
  DatasetIndex kept = index;
  kept.images.clear();
  kept.labels.clear();
  for (int64_t i = 0; i < n; ++i) {
    if (problem[i].empty()) {
      kept.images.push_back(index.images[i]);
      kept.labels.push_back(index.labels[i]);
    } else {
      if (strict) throw InputError(problem[i]);
      dropped.push_back(problem[i]);
    }
  }
  if (kept.images.empty())
    throw InputError(fmt::format("no readable image among {} (first: {})", n, dropped.empty() ? "" : dropped.front()));
  index = std::move(kept);
  return dropped;
}

DetectionLoader::DetectionLoader(DatasetIndex index, LoaderOptions options)
    : index_(std::move(index)), options_(std::move(options)) {
  TORCH_CHECK(!index_.images.empty(), "DetectionLoader: no images");
  TORCH_CHECK(options_.batch > 0 && options_.imgsz > 0 && options_.workers >= 0, "DetectionLoader: bad options");
  TORCH_CHECK(options_.world_size >= 1 && options_.rank >= 0 && options_.rank < options_.world_size,
              "DetectionLoader: bad rank");
}

DetectionLoader::~DetectionLoader() { stop_workers(); }

int64_t DetectionLoader::batches() const {
  const int64_t n = static_cast<int64_t>(index_.images.size()), world = options_.world_size;
  const int64_t per_rank = options_.pad_shards ? (n + world - 1) / world : (n - options_.rank + world - 1) / world;
  return (per_rank + options_.batch - 1) / options_.batch;
}

std::pair<at::Tensor, at::Tensor> DetectionLoader::sample(int64_t i, int64_t epoch, ImageShape* shape) const {
  const int64_t size = options_.imgsz;
  const auto& a = options_.augment_options;
  auto load = [&](int64_t k, double* scale, int64_t* w0, int64_t* h0) {
    DecodedImage d = decode_image(index_.images[k], size);
    if (scale) *scale = d.scale;
    if (w0) *w0 = d.original_width;
    if (h0) *h0 = d.original_height;
    const double w = static_cast<double>(d.image.size(1)), h = static_cast<double>(d.image.size(0));
    return ImageBoxes{d.image, to_pixel_corners(index_.labels[k], w, h)};
  };
  if (!options_.augment) {
    ImageShape s;
    ImageBoxes square = pad_to_square(load(i, &s.scale, &s.width, &s.height), size, &s.pad_x, &s.pad_y);
    if (shape) *shape = s;
    return {square.image.permute({2, 0, 1}).contiguous(), to_normalised_centres(square.boxes, size)};
  }
  AugmentRng rng = sample_rng(options_.seed, epoch, i);
  ImageBoxes out;
  if (std::uniform_real_distribution<double>(0, 1)(rng) < a.mosaic) {
    std::array<ImageBoxes, 4> parts;
    std::uniform_int_distribution<int64_t> pick(0, static_cast<int64_t>(index_.images.size()) - 1);
    parts[0] = load(i, nullptr, nullptr, nullptr);
    for (int k = 1; k < 4; ++k) parts[k] = load(pick(rng), nullptr, nullptr, nullptr);
    out = random_affine(mosaic4(parts, size, rng), size, a.translate, a.scale, rng);
  } else {
    out = random_affine(pad_to_square(load(i, nullptr, nullptr, nullptr), size), size, a.translate, a.scale, rng);
  }
  augment_hsv(out.image, a.hsv_h, a.hsv_s, a.hsv_v, rng);
  if (std::uniform_real_distribution<double>(0, 1)(rng) < a.fliplr) flip_horizontal(out);
  if (shape) *shape = ImageShape{1.0, 0, 0, size, size};
  return {out.image.permute({2, 0, 1}).contiguous(), to_normalised_centres(out.boxes, size)};
}

Batch DetectionLoader::make_batch(int64_t b) const {
  const int64_t begin = b * options_.batch, end = std::min<int64_t>(begin + options_.batch, order_.size());
  Batch batch;
  std::vector<at::Tensor> images, targets;
  for (int64_t k = begin; k < end; ++k) {
    ImageShape shape;
    auto [image, labels] = sample(order_[k], epoch_, &shape);
    images.push_back(image);
    at::Tensor index = at::full({labels.size(0), 1}, static_cast<double>(k - begin));
    targets.push_back(at::cat({index, labels}, 1));
    batch.paths.push_back(index_.images[order_[k]]);
    batch.shapes.push_back(shape);
  }
  batch.images = at::stack(images);
  batch.targets = at::cat(targets, 0);
  return batch;
}

void DetectionLoader::start_epoch(int64_t epoch) {
  stop_workers();
  epoch_ = epoch;
  const int64_t n = static_cast<int64_t>(index_.images.size());
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  if (options_.shuffle) {
    std::seed_seq seq{static_cast<uint32_t>(options_.seed), static_cast<uint32_t>(options_.seed >> 32),
                      static_cast<uint32_t>(epoch), 0x0bdeu};
    std::mt19937_64 rng(seq);
    std::shuffle(all.begin(), all.end(), rng);
  }
  // Every rank gets the same number of images (the first ones repeat), as torch's DistributedSampler does.
  const int64_t world = options_.world_size, per_rank = (n + world - 1) / world;
  order_.clear();
  for (int64_t k = options_.rank; k < (options_.pad_shards ? per_rank * world : n); k += world)
    order_.push_back(all[k % n]);
  next_batch_ = 0;
  claimed_ = 0;
  ready_.clear();
  failed_.clear();
  stopping_ = false;
  for (int64_t t = 0; t < options_.workers; ++t) workers_.emplace_back([this] { work(); });
}

void DetectionLoader::work() {
  const int64_t total = batches(), ahead = std::max<int64_t>(2, options_.workers * 2);
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || claimed_ >= total || claimed_ < next_batch_ + ahead; });
      if (stopping_ || claimed_ >= total) return;
      b = claimed_++;
    }
    Batch batch;
    std::exception_ptr error;
    try {
      batch = make_batch(b);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (error)
      failed_[b] = error;
    else
      ready_[b] = std::move(batch);
    changed_.notify_all();
  }
}

std::optional<Batch> DetectionLoader::next() {
  if (next_batch_ >= batches()) return std::nullopt;
  if (workers_.empty()) return make_batch(next_batch_++);
  std::unique_lock<std::mutex> lock(mutex_);
  const int64_t b = next_batch_;
  changed_.wait(lock, [&] { return ready_.count(b) || failed_.count(b); });
  if (failed_.count(b)) std::rethrow_exception(failed_[b]);
  Batch batch = std::move(ready_[b]);
  ready_.erase(b);
  ++next_batch_;
  changed_.notify_all();
  return batch;
}

void DetectionLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

}  // namespace revkit
