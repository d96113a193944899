#include "engine/distributed.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>

#include "core/cuda_runtime.h"
#include "core/error.h"

namespace revkit {

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::Backend> group;
  int64_t gather_round = 0;
};

namespace {

int parse_int_variable(const char* name, int fallback, bool required) {
  const char* v = std::getenv(name);
  if (v && !*v) throw InputError(fmt::format("environment variable {} is set but empty: expected a count", name));
  if (!v) {
    if (required) throw InputError(fmt::format("environment variable {} is not set (needed with WORLD_SIZE)", name));
    return fallback;
  }
  char* end = nullptr;
  const long value = std::strtol(v, &end, 10);
  if (*end != '\0' || value < 0 || value > 1 << 20)
    throw InputError(fmt::format("environment variable {}='{}' is not a count", name, v));
  return static_cast<int>(value);
}

[[noreturn]] void lost_contact(const DistributedOptions& o, const std::string& what, const std::exception& e) {
  std::string message = e.what();
  message = message.substr(0, message.find('\n'));
  throw RunStoppedError(fmt::format("rank {} of {}: {} failed within the {} s timeout (a rank is missing or died?): {}",
                                    o.rank, o.world_size, what, o.timeout.count() / 1000, message));
}

}  // namespace

std::optional<DistributedOptions> distributed_from_environment() {
  if (!std::getenv("WORLD_SIZE")) return std::nullopt;
  DistributedOptions o;
  o.world_size = parse_int_variable("WORLD_SIZE", 1, true);
  if (o.world_size < 1) throw InputError("environment variable WORLD_SIZE must be at least 1");
  o.rank = parse_int_variable("RANK", 0, o.world_size > 1);
  o.local_rank = parse_int_variable("LOCAL_RANK", o.rank, false);
  if (o.rank >= o.world_size) throw InputError(fmt::format("RANK {} is not below WORLD_SIZE {}", o.rank, o.world_size));
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) o.master_addr = addr;
  o.master_port = parse_int_variable("MASTER_PORT", 29500, false);
  if (o.master_port == 0 || o.master_port > 65535)
    throw InputError(fmt::format("MASTER_PORT {} is not a port", o.master_port));
  if (std::getenv("REVKIT_DIST_TIMEOUT"))
    o.timeout = std::chrono::seconds(std::max(1, parse_int_variable("REVKIT_DIST_TIMEOUT", 600, false)));
  return o;
}

Distributed::Distributed(const DistributedOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {
  const CudaRuntime* cuda = nullptr;  // set on CUDA: the collectives go through NCCL
  if (options.device.is_cuda()) {
    cuda = cuda_runtime();
    if (!cuda || !cuda->has_nccl())
      throw InputError("data-parallel training on CUDA needs NCCL, which this build of revkit has not found");
  }
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(options.master_port);
    so.isServer = options.rank == 0;
    so.numWorkers = static_cast<std::size_t>(options.world_size);
    so.waitWorkers = true;
    so.timeout = options.timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, so);
    if (cuda) {
      cuda->set_device(options.device.index() < 0 ? 0 : options.device.index());
      impl_->group = cuda->nccl_group(impl_->store, options.rank, options.world_size, options.timeout);
      return;
    }
    auto go = c10d::ProcessGroupGloo::Options::create();
    go->timeout = options.timeout;
    const bool loopback = options.master_addr == "127.0.0.1" || options.master_addr == "localhost";
    go->devices.push_back(loopback ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                   : c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, options.rank, options.world_size, go);
  } catch (const std::exception& e) {
    lost_contact(options, fmt::format("rendezvous at {}:{}", options.master_addr, options.master_port), e);
  }
}

Distributed::~Distributed() = default;

std::string Distributed::backend_name() const { return impl_->group->getBackendName(); }

void Distributed::all_reduce_sum(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  size_t begin = 0;
  while (begin < tensors.size()) {
    size_t end = begin;
    int64_t bytes = 0;
    while (end < tensors.size() &&
           (end == begin || bytes + tensors[end].nbytes() <= static_cast<size_t>(bucket_bytes)) &&
           tensors[end].scalar_type() == tensors[begin].scalar_type())
      bytes += static_cast<int64_t>(tensors[end++].nbytes());
    std::vector<at::Tensor> flat_parts;
    for (size_t i = begin; i < end; ++i) flat_parts.push_back(tensors[i].reshape(-1));
    // On the process group's device (NCCL reduces only CUDA tensors, Gloo here only CPU ones).
    std::vector<at::Tensor> bucket = {at::cat(flat_parts).to(options_.device)};
    try {
      impl_->group->allreduce(bucket)->wait();
    } catch (const std::exception& e) {
      lost_contact(options_, "all-reduce", e);
    }
    int64_t offset = 0;
    for (size_t i = begin; i < end; ++i) {
      const int64_t n = tensors[i].numel();
      tensors[i].copy_(bucket[0].narrow(0, offset, n).view_as(tensors[i]));
      offset += n;
    }
    begin = end;
  }
}

void Distributed::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  for (const auto& t : tensors) {
    std::vector<at::Tensor> one = {t.to(options_.device).contiguous()};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    try {
      impl_->group->broadcast(one, bo)->wait();
    } catch (const std::exception& e) {
      lost_contact(options_, "broadcast", e);
    }
    if (!one[0].is_same(t)) t.copy_(one[0]);
  }
}

void Distributed::barrier() {
  try {
    impl_->group->barrier()->wait();
  } catch (const std::exception& e) {
    lost_contact(options_, "barrier", e);
  }
}

std::vector<std::string> Distributed::all_gather_bytes(const std::string& bytes) {
  const int64_t round = impl_->gather_round++;
  std::vector<std::string> out;
  try {
    impl_->store->set(fmt::format("revkit/gather/{}/{}", round, options_.rank),
                      std::vector<uint8_t>(bytes.begin(), bytes.end()));
    for (int r = 0; r < options_.world_size; ++r) {
      const auto v = impl_->store->get(fmt::format("revkit/gather/{}/{}", round, r));
      out.emplace_back(v.begin(), v.end());
    }
  } catch (const std::exception& e) {
    lost_contact(options_, "gather", e);
  }
  return out;
}

void all_reduce_gradients(Distributed& dist, const torch::nn::Module& module) {
  std::vector<at::Tensor> grads;
  for (auto p : module.parameters()) {
    if (!p.requires_grad()) continue;
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    grads.push_back(p.grad());
  }
  dist.all_reduce_sum(grads);
}

void broadcast_module(Distributed& dist, const torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> all;
  for (const auto& p : module.parameters()) all.push_back(p);
  for (const auto& b : module.buffers()) all.push_back(b);
  dist.broadcast(all);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y = (x - mean) * invstd * weight + bias with the global batch's mean and invstd; backward sums the two
// per-channel reductions over ranks (the formula of torch's SyncBatchNorm).
struct SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            const at::Tensor& mean, const at::Tensor& invstd, double count, int64_t dist_address) {
    const at::Tensor xhat = (x - mean.view({1, -1, 1, 1})) * invstd.view({1, -1, 1, 1});
    ctx->save_for_backward({xhat, weight, invstd});
    ctx->saved_data["count"] = count;
    ctx->saved_data["dist"] = dist_address;
    return xhat * weight.view({1, -1, 1, 1}) + bias.view({1, -1, 1, 1});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &xhat = saved[0], &weight = saved[1], &invstd = saved[2];
    const double count = ctx->saved_data["count"].toDouble();
    auto* dist = reinterpret_cast<Distributed*>(ctx->saved_data["dist"].toInt());
    const at::Tensor dy = grads[0];
    const at::Tensor sum_dy = dy.sum({0, 2, 3}), sum_dy_xhat = (dy * xhat).sum({0, 2, 3});
    at::Tensor global = at::cat({sum_dy, sum_dy_xhat}).to(at::kDouble);
    if (dist) dist->all_reduce_sum({global});
    const int64_t c = sum_dy.size(0);
    const at::Tensor mean_dy = (global.narrow(0, 0, c) / count).to(dy.scalar_type()).view({1, -1, 1, 1});
    const at::Tensor mean_dy_xhat = (global.narrow(0, c, c) / count).to(dy.scalar_type()).view({1, -1, 1, 1});
    const at::Tensor dx = (dy - mean_dy - xhat * mean_dy_xhat) * (weight * invstd).view({1, -1, 1, 1});
    return {dx, sum_dy_xhat, sum_dy, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class GlobalBatchNorm : public BatchNormSync {
 public:
  explicit GlobalBatchNorm(Distributed* dist) : dist_(dist) {}
  at::Tensor forward(const at::Tensor& x, torch::nn::BatchNorm2dImpl& bn) override {
    const auto& o = bn.options;
    at::Tensor mean, var;
    double count = 0;
    {
      at::NoGradGuard no_grad;
      const at::Tensor xd = x.detach().to(at::kDouble);
      at::Tensor stats = at::cat({xd.sum({0, 2, 3}), (xd * xd).sum({0, 2, 3}),
                                  at::full({1}, static_cast<double>(x.numel() / x.size(1)), xd.options())});
      if (dist_) dist_->all_reduce_sum({stats});
      const int64_t c = x.size(1);
      count = stats[2 * c].item<double>();
      const at::Tensor m = stats.narrow(0, 0, c) / count;
      const at::Tensor v = (stats.narrow(0, c, c) / count - m * m).clamp_min(0);
      mean = m.to(x.scalar_type());
      var = v;
      if (o.track_running_stats()) {
        const double momentum = o.momentum().value_or(0.1);
        bn.running_mean.mul_(1 - momentum).add_(m.to(bn.running_mean.scalar_type()), momentum);
        bn.running_var.mul_(1 - momentum)
            .add_((v * (count / std::max(1.0, count - 1))).to(bn.running_var.scalar_type()), momentum);
        bn.num_batches_tracked.add_(1);
      }
    }
    const at::Tensor invstd = (var + o.eps()).rsqrt().to(x.scalar_type());
    return SyncBatchNormFunction::apply(x, bn.weight, bn.bias, mean, invstd, count, reinterpret_cast<int64_t>(dist_));
  }

 private:
  Distributed* dist_;
};

void set_sync(torch::nn::Module& module, const std::shared_ptr<BatchNormSync>& sync, int64_t& count) {
  if (auto* conv = dynamic_cast<ConvImpl*>(&module)) {
    conv->batch_norm_sync = sync;
    ++count;
  }
  for (auto& child : module.children()) set_sync(*child, sync, count);
}

}  // namespace

std::shared_ptr<BatchNormSync> make_batch_norm_sync(Distributed* dist) {
  return std::make_shared<GlobalBatchNorm>(dist);
}

int64_t enable_sync_batch_norm(torch::nn::Module& module, Distributed& dist) {
  int64_t count = 0;
  set_sync(module, make_batch_norm_sync(&dist), count);
  return count;
}

}  // namespace revkit
