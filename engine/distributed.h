#pragma once
// Data-parallel training on several processes with PyTorch's c10d: rendezvous through a TCPStore, collectives
// through NCCL for CUDA tensors and Gloo for CPU ones. The launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT, as torchrun sets it) says who is who. Every collective has a timeout, so a missing or dead
// rank ends the others with an error instead of a hang.
#include <torch/nn/module.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "necks/blocks.h"

namespace revkit {

struct DistributedOptions {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::milliseconds timeout{600000};  // long enough for rank 0 to validate and write while the others wait
  c10::Device device = c10::kCPU;             // where the tensors of the collectives live: CUDA means NCCL
};

// The options from RANK/WORLD_SIZE/... when WORLD_SIZE is set (nullopt otherwise); InputError naming the variable
// when one is malformed. REVKIT_DIST_TIMEOUT (seconds) overrides the timeout.
std::optional<DistributedOptions> distributed_from_environment();

class Distributed {
 public:
  explicit Distributed(const DistributedOptions& options);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  bool is_main() const { return options_.rank == 0; }
  // "nccl" or "gloo".
  std::string backend_name() const;

  // Sums in place across ranks, packed into buckets of about `bucket_bytes` (one collective per bucket).
  void all_reduce_sum(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = 25 << 20);
  // Copies rank `root`'s values into every rank's tensors, in place.
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  void barrier();
  // Every rank's bytes, in rank order (through the store: the sizes may differ).
  std::vector<std::string> all_gather_bytes(const std::string& bytes);

 private:
  struct Impl;
  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Sums the gradients of `module`'s parameters across ranks (parameters without a gradient contribute zeros).
void all_reduce_gradients(Distributed& dist, const torch::nn::Module& module);
// Rank 0's parameters and buffers to every rank.
void broadcast_module(Distributed& dist, const torch::nn::Module& module);

// SyncBatchNorm over `dist` for every Conv below `module` (the neck and head of a YOLO model); returns how many.
int64_t enable_sync_batch_norm(torch::nn::Module& module, Distributed& dist);

// A BatchNormSync over `dist`; exposed for tests (with one rank it must equal BatchNorm, gradients included).
std::shared_ptr<BatchNormSync> make_batch_norm_sync(Distributed* dist);

}  // namespace revkit
