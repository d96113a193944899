#include "plugins/revnet/revnet.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "reversible/testing.h"
#include "step_memory.h"

using namespace revkit;
using reversible::MemoryMode;

namespace {
RevNet small_revnet(int64_t blocks, MemoryMode mode = MemoryMode::Column) {
  return RevNet(
      RevNetOptions({4, 8, 8, 16}, {blocks, blocks, blocks, blocks}).column_options(reversible::ColumnOptions(mode)));
}
}  // namespace

TEST_CASE("RevNet: four maps at strides 4 to 32, BatchNorm in every coupling") {
  RevNet net = small_revnet(2);
  CHECK(reversible::reversible_modules(*net).size() == 4);
  auto outs = net->forward(at::randn({2, 3, 64, 32}));
  REQUIRE(outs.size() == 4);
  for (size_t s = 0; s < 4; ++s) {
    CHECK(outs[s].size(1) == net->out_channels()[s]);
    CHECK(outs[s].size(2) == 64 / net->strides()[s]);
  }
  CHECK(net->named_parameters().contains("stage1.f2.fn.conv1.weight"));
  CHECK_THROWS_WITH(net->forward(at::randn({1, 3, 48, 64})), doctest::Contains("multiples of 32"));
}

TEST_CASE("RevNet equals plain autograd in every mode, float64, with running statistics moved once") {
  for (int64_t blocks : {1, 3}) {
    at::manual_seed(blocks);
    RevNet net = small_revnet(blocks);
    net->to(at::kDouble);
    at::Tensor x = at::randn({2, 3, 64, 64}, at::kDouble);
    for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
      reversible::ModeComparison cmp;
      cmp.mode = mode;
      const auto report = reversible::compare_memory_modes(
          *net, [&](const at::Tensor& in) { return net->forward(in); }, x, cmp);
      INFO(blocks, " blocks, ", reversible::to_string(mode), ": worst ", report.worst_overall());
      CHECK(report.within(reversible::default_tolerance(mode, at::kDouble)));
      CHECK(!report.worst("buffers").name.empty());
    }
  }
}

TEST_CASE("RevNet full mode: activation memory flat in depth") {
  auto activation = [](int64_t blocks, MemoryMode mode) {
    at::manual_seed(0);
    RevNet net = small_revnet(blocks, mode);
    at::Tensor x = at::randn({2, 3, 128, 128});
    return testing::step_activation_bytes([&] { return net->forward(x); });
  };
  const int64_t full2 = activation(2, MemoryMode::Full), full8 = activation(8, MemoryMode::Full);
  const int64_t off8 = activation(8, MemoryMode::Off);
  INFO("full 2 blocks: ", full2, ", full 8: ", full8, ", off 8: ", off8);
  CHECK(full8 <= 1.10 * full2);
  CHECK(full8 < off8 / 3);
}

TEST_CASE("linked statically: the same plugin registers through register_plugin") {
  const auto added = register_plugin(revnet_plugin(), "revnet (static)");
  CHECK(added == std::vector<std::string>{"revnet_tiny", "revnet_small"});
  BackboneSettings settings;
  settings.columns = 1;
  settings.memory_mode = MemoryMode::Full;
  auto backbone = backbone_registry().factory("revnet_tiny")(settings);
  CHECK(backbone->out_channels() == std::vector<int64_t>{32, 64, 128, 256});
  CHECK_THROWS_WITH(register_plugin(revnet_plugin(), "again"), doctest::Contains("already registered"));
}
