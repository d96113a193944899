#pragma once
// Batches of detection data. Training samples are augmented (mosaic, affine, HSV, flip); validation samples are
// letterboxed only. Worker threads decode and augment the next batches while the model trains. Every sample is
// drawn from a generator seeded by (seed, epoch, image), and each epoch's order from (seed, epoch), so a run is
// reproducible whatever the number of workers, and can resume at any epoch.
#include <ATen/core/Tensor.h>

#include <condition_variable>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/images.h"

namespace revkit {

struct LoaderOptions {
  int64_t imgsz = 640;
  int64_t batch = 16;
  int64_t workers = 0;  // 0: the caller's thread decodes
  bool augment = false;
  bool shuffle = false;
  uint64_t seed = 0;
  AugmentOptions augment_options;
  int64_t no_mosaic_from_epoch = -1;  // epochs from this one on are augmented without mosaic (-1: never)
  int64_t rank = 0, world_size = 1;   // data-parallel shard: this process reads every world_size-th image
  bool pad_shards = true;             // repeat images so every rank has as many (training); false: each image once
  // Validation in rect batches, as val.py runs it (rect=True, pad 0.5): images in aspect-ratio order, each batch
  // letterboxed to ceil(its shape * imgsz / stride + rect_pad) * stride instead of an imgsz square.
  bool rect = false;
  double rect_pad = 0.5;
  LetterboxRule letterbox = LetterboxRule::Yolov5;  // validation's (see load_letterboxed)
  int64_t stride = 32;
  bool pin_memory = false;  // batches in page-locked memory, for asynchronous copies to a CUDA device
};

struct Batch {
  at::Tensor images;   // [B, 3, H, W] uint8 RGB (H = W = imgsz but in rect batches)
  at::Tensor targets;  // [n, 6] (index in batch, class, x, y, w, h), normalised to W and H
  std::vector<std::string> paths;
  std::vector<ImageShape> shapes;
};

// More loader threads than any machine decodes with: a larger --workers is a mistake, refused before any starts.
constexpr int64_t kMaxLoaderWorkers = 1024;
// Throws InputError "--workers must be ..." unless 0 <= workers <= kMaxLoaderWorkers.
void check_loader_workers(int64_t workers);

// Decodes every image once and removes those that cannot be read (with their labels) from the index, returning
// one "<file>: <problem>" per image removed; with `strict`, the first one is an InputError instead.
std::vector<std::string> drop_unreadable_images(DatasetIndex& index, bool strict, int64_t threads = 1);

class DetectionLoader {
 public:
  DetectionLoader(DatasetIndex index, LoaderOptions options);
  ~DetectionLoader();
  DetectionLoader(const DetectionLoader&) = delete;
  DetectionLoader& operator=(const DetectionLoader&) = delete;

  const DatasetIndex& index() const { return index_; }
  const LoaderOptions& options() const { return options_; }
  int64_t batches() const;  // per epoch, for this rank
  // Images in the epoch's smallest batch (its last) for this rank; 0 for an empty shard (unpadded, fewer images
  // than ranks).
  int64_t smallest_batch() const;

  // Begins an epoch (stopping any unfinished one); next() then returns its batches in order.
  void start_epoch(int64_t epoch);
  std::optional<Batch> next();

  // One sample of an epoch, as next() would build it: [3, H, W] uint8 (an imgsz square unless a validation
  // sample is given its batch's `height` and `width`), labels [n, 5] (class, x, y, w, h) normalised.
  std::pair<at::Tensor, at::Tensor> sample(int64_t image, int64_t epoch, ImageShape* shape = nullptr,
                                           int64_t height = 0, int64_t width = 0) const;

 private:
  int64_t images_per_rank() const;  // this rank's shard of an epoch, padded or not: what start_epoch deals
  Batch make_batch(int64_t b) const;
  // The letterbox of batch b's images in rect mode (height, width); an imgsz square otherwise.
  std::array<int64_t, 2> batch_shape(int64_t begin, int64_t end) const;
  void stop_workers();
  void work();

  DatasetIndex index_;
  LoaderOptions options_;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;  // this rank's images for the epoch, in order
  int64_t next_batch_ = 0;

  // Prefetching: workers claim batch numbers and leave finished batches (or their error) in `ready_`.
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failed_;
  int64_t claimed_ = 0;
  bool stopping_ = false;
};

}  // namespace revkit
