#include "engine/distributed.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "gpu.h"
#include "reversible/testing.h"

using namespace revkit;

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// Runs `body(dist)` on `world` ranks, each a thread of this process with its own Gloo group on loopback.
void on_ranks(int world, const std::function<void(Distributed&)>& body) {
  const int port = free_port();
  std::vector<std::thread> threads;
  std::vector<std::string> errors(world);
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        DistributedOptions o;
        o.rank = r;
        o.world_size = world;
        o.master_port = port;
        o.timeout = std::chrono::seconds(30);
        Distributed dist(o);
        body(dist);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) CHECK_MESSAGE(errors[r].empty(), "rank ", r, ": ", errors[r]);
}

torch::nn::BatchNorm2d make_bn(int64_t c) {
  torch::nn::BatchNorm2d bn(torch::nn::BatchNormOptions(c).eps(1e-3).momentum(0.03));
  bn->to(at::kDouble);
  at::NoGradGuard no_grad;
  bn->weight.copy_(at::linspace(0.5, 1.5, c, at::kDouble));
  bn->bias.copy_(at::linspace(-0.2, 0.3, c, at::kDouble));
  return bn;
}

}  // namespace

TEST_CASE("the launcher's environment, and its mistakes named") {
  ::unsetenv("WORLD_SIZE");
  CHECK_FALSE(distributed_from_environment());
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "2", 1);
  ::setenv("LOCAL_RANK", "0", 1);
  ::setenv("MASTER_ADDR", "10.0.0.7", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  ::setenv("REVKIT_DIST_TIMEOUT", "12", 1);
  auto o = distributed_from_environment();
  REQUIRE(o);
  CHECK(o->world_size == 4);
  CHECK(o->rank == 2);
  CHECK(o->local_rank == 0);
  CHECK(o->master_addr == "10.0.0.7");
  CHECK(o->master_port == 29511);
  CHECK(o->timeout == std::chrono::seconds(12));
  ::setenv("RANK", "4", 1);
  CHECK_THROWS_WITH_AS(distributed_from_environment(), "RANK 4 is not below WORLD_SIZE 4", InputError);
  ::setenv("RANK", "one", 1);
  CHECK_THROWS_WITH_AS(distributed_from_environment(), "environment variable RANK='one' is not a count", InputError);
  ::unsetenv("RANK");
  CHECK_THROWS_WITH_AS(distributed_from_environment(), doctest::Contains("RANK is not set"), InputError);
  for (const char* v : {"WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "REVKIT_DIST_TIMEOUT"}) ::unsetenv(v);
}

TEST_CASE("collectives on two ranks: bucketed sums, broadcast, gathering bytes of different sizes") {
  on_ranks(2, [](Distributed& d) {
    const double r = d.rank();
    std::vector<at::Tensor> t = {at::full({3}, r + 1, at::kFloat), at::full({2, 2}, 10 * (r + 1), at::kFloat),
                                 at::full({5}, r, at::kDouble)};
    d.all_reduce_sum(t, /*bucket_bytes=*/16);  // several buckets
    CHECK(t[0].eq(3).all().item<bool>());
    CHECK(t[1].eq(30).all().item<bool>());
    CHECK(t[2].eq(1).all().item<bool>());
    at::Tensor b = at::full({4}, r + 7);
    d.broadcast({b});
    CHECK(b.eq(7).all().item<bool>());
    const auto gathered = d.all_gather_bytes(std::string(d.rank() + 1, 'a' + d.rank()));
    REQUIRE(gathered.size() == 2);
    CHECK(gathered[0] == "a");
    CHECK(gathered[1] == "bb");
    d.barrier();
  });
}

TEST_CASE("SyncBatchNorm on one rank is BatchNorm: outputs, running statistics and gradients") {
  at::manual_seed(3);
  auto plain = make_bn(4), synced = make_bn(4);
  const at::Tensor x = at::randn({3, 4, 5, 6}, at::kDouble) * 2 + 1;
  const at::Tensor dy = at::randn({3, 4, 5, 6}, at::kDouble);
  at::Tensor xa = x.clone().requires_grad_(), xb = x.clone().requires_grad_();
  const at::Tensor ya = plain->forward(xa);
  const at::Tensor yb = make_batch_norm_sync(nullptr)->forward(xb, *synced);
  CHECK(reversible::relative_difference(ya, yb) < 1e-12);
  (ya * dy).sum().backward();
  (yb * dy).sum().backward();
  CHECK(reversible::relative_difference(xa.grad(), xb.grad()) < 1e-10);
  CHECK(reversible::relative_difference(plain->weight.grad(), synced->weight.grad()) < 1e-12);
  CHECK(reversible::relative_difference(plain->bias.grad(), synced->bias.grad()) < 1e-12);
  CHECK(reversible::relative_difference(plain->running_mean, synced->running_mean) < 1e-12);
  CHECK(reversible::relative_difference(plain->running_var, synced->running_var) < 1e-12);
  CHECK(synced->num_batches_tracked.item<int64_t>() == 1);
}

TEST_CASE("SyncBatchNorm on two ranks, half a batch each, equals BatchNorm on the whole batch") {
  at::manual_seed(4);
  const at::Tensor x = at::randn({4, 3, 5, 5}, at::kDouble) * 3 - 1;
  const at::Tensor dy = at::randn({4, 3, 5, 5}, at::kDouble);
  auto whole = make_bn(3);
  at::Tensor xw = x.clone().requires_grad_();
  const at::Tensor yw = whole->forward(xw);
  (yw * dy).sum().backward();
  std::vector<at::Tensor> y(2), dx(2), dw(2), db(2);
  on_ranks(2, [&](Distributed& d) {
    auto bn = make_bn(3);
    const int r = d.rank();
    at::Tensor xr = x.narrow(0, 2 * r, 2).clone().requires_grad_();
    y[r] = make_batch_norm_sync(&d)->forward(xr, *bn);
    (y[r] * dy.narrow(0, 2 * r, 2)).sum().backward();
    dx[r] = xr.grad();
    dw[r] = bn->weight.grad().clone();
    db[r] = bn->bias.grad().clone();
    CHECK(reversible::relative_difference(bn->running_var, whole->running_var) < 1e-12);
  });
  CHECK(reversible::relative_difference(at::cat(y), yw) < 1e-12);
  CHECK(reversible::relative_difference(at::cat(dx), xw.grad()) < 1e-10);
  // Parameter gradients are per-rank shares: their sum (what the gradient all-reduce makes) is the whole's.
  CHECK(reversible::relative_difference(dw[0] + dw[1], whole->weight.grad()) < 1e-12);
  CHECK(reversible::relative_difference(db[0] + db[1], whole->bias.grad()) < 1e-12);
}

TEST_CASE("a missing rank is an error within the timeout, not a hang") {
  DistributedOptions o;
  o.rank = 0;
  o.world_size = 2;
  o.master_port = free_port();
  o.timeout = std::chrono::seconds(2);
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(Distributed{o}, doctest::Contains("rank 0 of 2: rendezvous at 127.0.0.1"), std::runtime_error);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
}

REVKIT_GPU_TEST_CASE("GPU: a one-rank NCCL group for CUDA tensors, with CPU tensors reduced through it too") {
  REQUIRE(at::hasCUDA());
  DistributedOptions o;
  o.master_port = free_port();
  o.device = c10::Device(c10::kCUDA, 0);
  Distributed dist(o);
  CHECK(dist.backend_name() == "nccl");
  at::Tensor g = at::arange(6, at::TensorOptions(at::kFloat).device(o.device));
  at::Tensor counts = at::tensor({1.0, 2.0}, at::kDouble);  // the loss counters live on the CPU
  dist.all_reduce_sum({g, counts});
  CHECK(g.device() == o.device);
  CHECK(at::equal(g.cpu(), at::arange(6, at::kFloat)));
  CHECK(counts[1].item<double>() == 2.0);
  dist.broadcast({g, counts});
  dist.barrier();
}
