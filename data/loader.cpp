#include "data/loader.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <system_error>

#include "core/error.h"
#include "data/images.h"

namespace revkit {
namespace {

AugmentRng sample_rng(uint64_t seed, int64_t epoch, int64_t image) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(epoch),
                    static_cast<uint32_t>(image), 0x5eedu};
  return AugmentRng(seq);
}

// The system refusing a thread (a process or memory limit) is named with the count asked for; the caller stops
// and joins the threads already started before it rethrows.
[[noreturn]] void thread_refused(int64_t asked, const std::system_error& e) {
  throw InputError(fmt::format("--workers {}: the system refused to start another loader thread ({})", asked,
                               e.code().message()));
}

}  // namespace

void check_loader_workers(int64_t workers) {
  if (workers < 0 || workers > kMaxLoaderWorkers)
    throw InputError(fmt::format("--workers must be between 0 and {}, got {}", kMaxLoaderWorkers, workers));
}

std::vector<std::string> drop_unreadable_images(DatasetIndex& index, bool strict, int64_t threads) {
  const int64_t n = static_cast<int64_t>(index.images.size());
  std::vector<std::string> problem(n);
  std::vector<std::array<int64_t, 2>> sizes(n);
  std::atomic<int64_t> next{0};
  auto check = [&] {
    for (int64_t i = next++; i < n; i = next++) {
      try {
        const DecodedImage d = decode_image(index.images[i], 64);
        sizes[i] = {d.original_width, d.original_height};
        if (d.original_width < 10 || d.original_height < 10)  // Ultralytics leaves such images out too
          problem[i] = fmt::format("{}: the image is {}x{} pixels, below 10 on a side", index.images[i],
                                   d.original_width, d.original_height);
      } catch (const InputError& e) {
        problem[i] = e.what();
      }
    }
  };
  std::vector<std::thread> pool;
  try {
    for (int64_t t = 1; t < std::max<int64_t>(1, threads); ++t) pool.emplace_back(check);
  } catch (const std::system_error& e) {
    next = n;  // the started threads find nothing left to claim
    for (auto& t : pool) t.join();
    thread_refused(threads, e);
  }
  check();
  for (auto& t : pool) t.join();

  std::vector<std::string> dropped;
  DatasetIndex kept = index;
  kept.images.clear();
  kept.labels.clear();
  kept.sizes.clear();
  for (int64_t i = 0; i < n; ++i) {
    if (problem[i].empty()) {
      kept.images.push_back(index.images[i]);
      kept.labels.push_back(index.labels[i]);
      kept.sizes.push_back(sizes[i]);
    } else {
      if (strict) throw InputError(problem[i]);
      dropped.push_back(problem[i]);
    }
  }
  if (kept.images.empty())
    throw InputError(fmt::format("no readable image among {} (first: {})", n, dropped.empty() ? "" : dropped.front()));
  // A dropped image is no longer a background, however its labels read.
  kept.backgrounds =
      std::count_if(kept.labels.begin(), kept.labels.end(), [](const at::Tensor& l) { return l.size(0) == 0; });
  index = std::move(kept);
  return dropped;
}

DetectionLoader::DetectionLoader(DatasetIndex index, LoaderOptions options)
    : index_(std::move(index)), options_(std::move(options)) {
  TORCH_CHECK(!index_.images.empty(), "DetectionLoader: no images");
  TORCH_CHECK(options_.batch > 0 && options_.imgsz > 0 && options_.workers >= 0, "DetectionLoader: bad options");
  TORCH_CHECK(options_.world_size >= 1 && options_.rank >= 0 && options_.rank < options_.world_size,
              "DetectionLoader: bad rank");
  if (options_.rect && index_.sizes.size() != index_.images.size()) {  // not yet known: read them
    index_.sizes.clear();
    for (const auto& path : index_.images) {
      const DecodedImage d = decode_image(path, 64);
      index_.sizes.push_back({d.original_width, d.original_height});
    }
  }
}

DetectionLoader::~DetectionLoader() { stop_workers(); }

int64_t DetectionLoader::images_per_rank() const {
  const int64_t n = static_cast<int64_t>(index_.images.size()), world = options_.world_size;
  return options_.pad_shards ? (n + world - 1) / world : (n - options_.rank + world - 1) / world;
}

int64_t DetectionLoader::batches() const { return (images_per_rank() + options_.batch - 1) / options_.batch; }

int64_t DetectionLoader::smallest_batch() const {
  const int64_t n = images_per_rank();
  return n == 0 ? 0 : n - (batches() - 1) * options_.batch;
}

std::pair<at::Tensor, at::Tensor> DetectionLoader::sample(int64_t i, int64_t epoch, ImageShape* shape, int64_t height,
                                                          int64_t width) const {
  const int64_t size = options_.imgsz;
  const auto& a = options_.augment_options;
  auto load = [&](int64_t k) {
    DecodedImage d = decode_image(index_.images[k], size);
    const double w = static_cast<double>(d.image.size(1)), h = static_cast<double>(d.image.size(0));
    return ImageBoxes{d.image, to_pixel_corners(index_.labels[k], w, h)};
  };
  if (!options_.augment) {
    const LetterboxedImage lb = load_letterboxed(index_.images[i], size, height > 0 ? height : size,
                                                 width > 0 ? width : size, index_.labels[i], options_.letterbox);
    if (shape) *shape = lb.shape;
    return {lb.image, lb.labels};
  }
  AugmentRng rng = sample_rng(options_.seed, epoch, i);
  ImageBoxes out;
  const bool mosaic_closed = options_.no_mosaic_from_epoch >= 0 && epoch >= options_.no_mosaic_from_epoch;
  if (std::uniform_real_distribution<double>(0, 1)(rng) < (mosaic_closed ? 0.0 : a.mosaic)) {
    std::array<ImageBoxes, 4> parts;
    std::uniform_int_distribution<int64_t> pick(0, static_cast<int64_t>(index_.images.size()) - 1);
    parts[0] = load(i);
    for (int k = 1; k < 4; ++k) parts[k] = load(pick(rng));
    out = random_affine(mosaic4(parts, size, rng), size, a.translate, a.scale, rng);
  } else {
    out = random_affine(pad_to_square(load(i), size), size, a.translate, a.scale, rng);
  }
  augment_hsv(out.image, a.hsv_h, a.hsv_s, a.hsv_v, rng);
  if (std::uniform_real_distribution<double>(0, 1)(rng) < a.fliplr) flip_horizontal(out);
  if (shape) *shape = ImageShape{1.0, 0, 0, size, size};
  return {out.image.permute({2, 0, 1}).contiguous(), to_normalised_centres(out.boxes, size, size)};
}

std::array<int64_t, 2> DetectionLoader::batch_shape(int64_t begin, int64_t end) const {
  const int64_t size = options_.imgsz;
  if (!options_.rect || options_.augment) return {size, size};
  double lo = 0, hi = 0;  // the batch's least and greatest height / width
  for (int64_t k = begin; k < end; ++k) {
    const auto [w, h] = index_.sizes[order_[k]];
    const double ar = static_cast<double>(h) / static_cast<double>(w);
    lo = k == begin ? ar : std::min(lo, ar), hi = k == begin ? ar : std::max(hi, ar);
  }
  double rh = 1, rw = 1;  // val.py: [maxi, 1] when every image is wide, [1, 1 / mini] when every one is tall
  if (hi < 1)
    rh = hi;
  else if (lo > 1)
    rw = 1 / lo;
  auto side = [&](double r) {
    const double stride = static_cast<double>(options_.stride);
    return static_cast<int64_t>(std::ceil(r * size / stride + options_.rect_pad)) * options_.stride;
  };
  return {side(rh), side(rw)};
}

Batch DetectionLoader::make_batch(int64_t b) const {
  const int64_t begin = b * options_.batch, end = std::min<int64_t>(begin + options_.batch, order_.size());
  const auto [height, width] = batch_shape(begin, end);
  Batch batch;
  std::vector<at::Tensor> images, targets;
  for (int64_t k = begin; k < end; ++k) {
    ImageShape shape;
    auto [image, labels] = sample(order_[k], epoch_, &shape, height, width);
    images.push_back(image);
    at::Tensor index = at::full({labels.size(0), 1}, static_cast<double>(k - begin));
    targets.push_back(at::cat({index, labels}, 1));
    batch.paths.push_back(index_.images[order_[k]]);
    batch.shapes.push_back(shape);
  }
  batch.images = at::stack(images);
  batch.targets = at::cat(targets, 0);
  if (options_.pin_memory) {  // in the worker, so the copy to the GPU can run asynchronously
    batch.images = batch.images.pin_memory();
    batch.targets = batch.targets.pin_memory();
  }
  return batch;
}

void DetectionLoader::start_epoch(int64_t epoch) {
  stop_workers();
  epoch_ = epoch;
  const int64_t n = static_cast<int64_t>(index_.images.size());
  std::vector<int64_t> all(n);
  std::iota(all.begin(), all.end(), 0);
  if (options_.rect && !options_.augment) {  // aspect-ratio order, so a batch holds images of one shape
    auto ar = [&](int64_t k) {
      return static_cast<double>(index_.sizes[k][1]) / static_cast<double>(index_.sizes[k][0]);
    };
    std::stable_sort(all.begin(), all.end(), [&](int64_t x, int64_t y) { return ar(x) < ar(y); });
  } else if (options_.shuffle) {
    std::seed_seq seq{static_cast<uint32_t>(options_.seed), static_cast<uint32_t>(options_.seed >> 32),
                      static_cast<uint32_t>(epoch), 0x0bdeu};
    std::mt19937_64 rng(seq);
    std::shuffle(all.begin(), all.end(), rng);
  }
  // Every rank's i-th image is the order's (rank + i * world)-th; padded shards all have as many images (the first
  // ones repeat), as torch's DistributedSampler does.
  order_.clear();
  for (int64_t i = 0; i < images_per_rank(); ++i)
    order_.push_back(all[(options_.rank + i * options_.world_size) % n]);
  next_batch_ = 0;
  claimed_ = 0;
  ready_.clear();
  failed_.clear();
  stopping_ = false;
  try {
    for (int64_t t = 0; t < options_.workers; ++t) workers_.emplace_back([this] { work(); });
  } catch (const std::system_error& e) {
    stop_workers();
    thread_refused(options_.workers, e);
  }
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
