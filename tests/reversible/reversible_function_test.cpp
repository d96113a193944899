#include "reversible/reversible_function.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <doctest/doctest.h>
#include <torch/autograd.h>

#include "backbones/revcol.h"
#include "core/autocast_state.h"
#include "core/error.h"
#include "gpu.h"
#include "reversible/testing.h"
#include "step_memory.h"
#include "toy_levels.h"

using namespace revkit;
using reversible::MemoryMode;
using testing::ToyOptions;
using testing::ToyStack;

namespace {

reversible::EquivalenceReport compare(torch::nn::Module& model, const reversible::ForwardFn& forward,
                                      const at::Tensor& input, MemoryMode mode, int64_t store_every = 0) {
  reversible::ModeComparison cmp;
  cmp.mode = mode;
  cmp.store_every = store_every;
  cmp.seed = 7;
  return reversible::compare_memory_modes(model, forward, input, cmp);
}

void check_modes(torch::nn::Module& model, const reversible::ForwardFn& forward, const at::Tensor& input,
                 bool check_full = true) {
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
    if (mode == MemoryMode::Full && !check_full) continue;
    const auto report = compare(model, forward, input, mode);
    const double tol = reversible::default_tolerance(mode, input.scalar_type());
    INFO("mode ", reversible::to_string(mode), ": worst ", report.worst_overall());
    CHECK(report.rng_stream_equal);
    CHECK(report.worst_overall() <= tol);
    CHECK(report.differences.size() > 4);
  }
}

RevCol small_revcol(int64_t columns, double drop_path, double alpha_init = 0.5) {
  return RevCol(RevColOptions({8, 16, 24, 32}, {1, 1, 2, 1}, columns).drop_path(drop_path).alpha_init(alpha_init));
}

// A float64 RevCol in `cmp`'s mode, kept columns, store-every and kept products against plain autograd: the RNG
// stream untouched, every output and gradient compared, all within the mode's tolerance.
void check_against_plain(RevCol& model, const at::Tensor& x, const reversible::ModeComparison& cmp) {
  const auto report = reversible::compare_memory_modes(
      *model, [&](const at::Tensor& in) { return model->forward(in); }, x, cmp);
  INFO("mode ", reversible::to_string(cmp.mode), ", keep ", cmp.keep_columns, ", store every ", cmp.store_every,
       ", matmuls ", cmp.keep_matmuls, ", levels ", cmp.keep_levels, ": worst ", report.worst_overall(), " at ",
       report.worst("parameter gradients").name);
  CHECK(report.rng_stream_equal);
  CHECK(report.differences.size() > 8);
  CHECK(report.within(reversible::default_tolerance(cmp.mode, at::kDouble)));
}

}  // namespace

TEST_CASE("memory modes parse and print") {
  CHECK(reversible::parse_memory_mode("full") == MemoryMode::Full);
  CHECK(reversible::to_string(MemoryMode::Column) == "column");
  CHECK_THROWS_WITH_AS(reversible::parse_memory_mode("half"),
                       "unknown memory mode 'half' (expected off, column, full or auto)", InputError);
}

TEST_CASE("column roles: column stores all, full the last recomputed and every k-th back from it, kept at the end") {
  using reversible::ColumnOptions;
  // R: rebuilt by the inverse, S: states stored, K: internals kept.
  auto roles = [](const ColumnOptions& o, int64_t columns) {
    std::string text;
    for (auto role : reversible::column_roles(o, columns))
      text += role == reversible::ColumnRole::Reversed ? 'R' : role == reversible::ColumnRole::Stored ? 'S' : 'K';
    return text;
  };
  CHECK(roles(ColumnOptions(MemoryMode::Column), 3) == "SSS");
  CHECK(roles(ColumnOptions(MemoryMode::Full), 4) == "RRRS");
  CHECK(roles(ColumnOptions(MemoryMode::Full).store_every(2), 5) == "SRSRS");
  CHECK(roles(ColumnOptions(MemoryMode::Column).keep_columns(1), 4) == "SSSK");
  // store_every counts back from the last recomputed column, not from the last column.
  CHECK(roles(ColumnOptions(MemoryMode::Full).store_every(2).keep_columns(2), 6) == "RSRSKK");
  CHECK(roles(ColumnOptions(MemoryMode::Full).keep_columns(9), 3) == "KKK");
  CHECK(roles(ColumnOptions(MemoryMode::Off), 2) == "KK");
  // Matrix products are kept by the last keep_matmuls() recomputed columns: a kept column has no recompute.
  auto matmuls = [](const ColumnOptions& o, int64_t columns) {
    std::string text;
    for (bool keeps : reversible::matmul_columns(o, columns)) text += keeps ? 'M' : '.';
    return text;
  };
  CHECK(matmuls(ColumnOptions(MemoryMode::Column), 3) == "...");
  CHECK(matmuls(ColumnOptions(MemoryMode::Column).keep_columns(1).keep_matmuls(2), 4) == ".MM.");
  CHECK(matmuls(ColumnOptions(MemoryMode::Full).keep_matmuls(9), 3) == "MMM");
  CHECK(matmuls(ColumnOptions(MemoryMode::Off).keep_matmuls(2), 2) == "..");
  // Chunked recompute runs its pieces' blocks again in backward, outside the cell's replay: nothing to gain.
  CHECK(matmuls(ColumnOptions(MemoryMode::Column).keep_matmuls(2).recompute_chunks(2), 2) == "..");
}

TEST_CASE("alpha clamp keeps the sign and lifts zero to the floor") {
  ToyStack toy(ToyOptions{});
  at::Tensor a = toy->column_grid().alphas[1][0];
  {
    at::NoGradGuard g;
    a.copy_(at::tensor({-1e-5, 0.0, 0.5}, at::kFloat).view({1, 3, 1, 1}));
  }
  const int64_t version = a._version();
  reversible::clamp_alphas(toy->column_grid(), 1e-3);
  CHECK(a.flatten()[0].item<float>() == doctest::Approx(-1e-3));
  CHECK(a.flatten()[1].item<float>() == doctest::Approx(1e-3));
  CHECK(a.flatten()[2].item<float>() == doctest::Approx(0.5));
  // Written as the seed writes through .data: the parameter's version counter does not move, so a graph that
  // saved alpha earlier stays valid.
  CHECK(a._version() == version);
  const at::Tensor before = a.clone();
  reversible::clamp_alphas(toy->column_grid(), 1e-3);  // nothing left to clamp
  CHECK(a.equal(before));
  CHECK(a._version() == version);
}

TEST_CASE("two forwards and one backward of the summed losses: every mode equals plain autograd") {
  // Siamese inputs, multi-crop, a model run twice in one step. In off mode this failed with "modified by an
  // inplace operation" while the alpha clamp wrote through copy_.
  at::manual_seed(11);
  RevCol model = small_revcol(3, /*drop_path=*/0.2);
  model->to(at::kDouble);
  at::Tensor x = at::randn({2, 3, 64, 64}, at::kDouble);
  auto twice = [&](const at::Tensor& in) {
    auto outs = model->forward(in);
    for (const auto& o : model->forward(in.flip(3) * 0.5)) outs.push_back(o);
    return outs;
  };
  for (MemoryMode mode : {MemoryMode::Off, MemoryMode::Column, MemoryMode::Full, MemoryMode::Auto}) {
    const auto report = compare(*model, twice, x, mode);
    INFO("mode ", reversible::to_string(mode), ": worst ", report.worst_overall(), " at ",
         report.worst("parameter gradients").name);
    CHECK(report.differences.size() > 8);
    CHECK(report.within(reversible::default_tolerance(mode, at::kDouble)));
  }
}

TEST_CASE("create_graph through a reversible grid is a clear error") {
  ToyStack toy(ToyOptions{});
  at::Tensor x = at::randn({1, 3, 4, 4}).requires_grad_(true);
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
    reversible::set_memory_mode(*toy, mode);
    auto outs = toy->forward(x);
    CHECK_THROWS_WITH(torch::autograd::grad({outs[0].sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true),
                      doctest::Contains("create_graph=true (double backward) through a reversible column grid"));
  }
  reversible::set_memory_mode(*toy, MemoryMode::Off);  // plain autograd supports it
  auto outs = toy->forward(x);
  auto g = torch::autograd::grad({outs[0].sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/true);
  CHECK(g[0].requires_grad());
}

TEST_CASE("L = 2 additive coupling with dropout: every mode equals plain autograd, RNG stream untouched") {
  for (auto dtype : {at::kDouble, at::kFloat})
    for (int64_t columns : {1, 2, 5}) {
      INFO("dtype ", std::string(c10::toString(dtype)), ", columns ", columns);
      at::manual_seed(1);
      ToyStack toy(ToyOptions{3, 2, columns, 1.0, 0.2});
      toy->to(dtype);
      at::Tensor x = at::randn({2, 3, 8, 8}, at::TensorOptions().dtype(dtype));
      check_modes(
          *toy, [&](const at::Tensor& in) { return toy->forward(in); }, x);
    }
}

TEST_CASE("RevCol (L = 4) with drop path: every mode equals plain autograd") {
  for (int64_t columns : {1, 2, 5}) {
    INFO("columns ", columns);
    at::manual_seed(2);
    RevCol model = small_revcol(columns, 0.2);
    model->to(at::kDouble);
    at::Tensor x = at::randn({2, 3, 64, 64}, at::kDouble);
    check_modes(
        *model, [&](const at::Tensor& in) { return model->forward(in); }, x);
  }
  for (int64_t columns : {1, 2, 5}) {
    INFO("float32, columns ", columns);
    at::manual_seed(3);
    // Full mode in float32 divides by alpha every column: at the seed's 0.5 it stays within 2e-4 up to four
    // columns (see the drift table); with alpha 1 it holds at five.
    RevCol model = small_revcol(columns, 0.2, columns > 4 ? 1.0 : 0.5);
    at::Tensor x = at::randn({2, 3, 64, 64});
    check_modes(
        *model, [&](const at::Tensor& in) { return model->forward(in); }, x);
  }
}

TEST_CASE("full mode with store-every equals plain autograd") {
  at::manual_seed(4);
  RevCol model = small_revcol(5, 0.1);
  model->to(at::kDouble);
  at::Tensor x = at::randn({1, 3, 32, 32}, at::kDouble);
  const auto report = compare(
      *model, [&](const at::Tensor& in) { return model->forward(in); }, x, MemoryMode::Full, 2);
  CHECK(report.worst_overall() <= 1e-8);
}

TEST_CASE("kept columns: every mode and number of kept columns equals plain autograd") {
  at::manual_seed(21);
  RevCol model = small_revcol(4, /*drop_path=*/0.2);
  model->to(at::kDouble);
  at::Tensor x = at::randn({2, 3, 32, 32}, at::kDouble);
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full})
    for (int64_t keep : {1, 2, 3, 4, 6})
      for (int64_t every : {0, 2}) {
        reversible::ModeComparison cmp;
        cmp.mode = mode;
        cmp.keep_columns = keep;
        cmp.store_every = every;
        cmp.seed = 7;
        check_against_plain(model, x, cmp);
      }
}

TEST_CASE("kept matrix products: every mode, with kept columns and drop path, equals plain autograd") {
  at::manual_seed(23);
  RevCol model = small_revcol(4, /*drop_path=*/0.2);
  model->to(at::kDouble);
  at::Tensor x = at::randn({2, 3, 32, 32}, at::kDouble);
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full})
    for (int64_t keep : {0, 1})
      for (int64_t matmuls : {1, 4}) {
        reversible::ModeComparison cmp;
        cmp.mode = mode;
        cmp.keep_columns = keep;
        cmp.keep_matmuls = matmuls;
        cmp.seed = 9;
        check_against_plain(model, x, cmp);
      }
}

TEST_CASE("kept levels: every mode, with kept columns, kept products and drop path, equals plain autograd") {
  at::manual_seed(25);
  RevCol model = small_revcol(4, /*drop_path=*/0.2);
  model->to(at::kDouble);
  at::Tensor x = at::randn({2, 3, 32, 32}, at::kDouble);
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full})
    for (int64_t levels : {1, 2, 3})
      for (int64_t keep : {0, 1}) {
        reversible::ModeComparison cmp;
        cmp.mode = mode;
        cmp.keep_levels = levels;
        cmp.keep_columns = keep;
        cmp.keep_matmuls = keep ? 4 : 0;
        cmp.store_every = mode == MemoryMode::Full ? 2 : 0;
        cmp.seed = 10;
        check_against_plain(model, x, cmp);
      }
}

TEST_CASE("kept levels in a one-column grid, and every level kept, equal plain autograd") {
  at::manual_seed(27);
  for (int64_t columns : {1, 3}) {
    RevCol model = small_revcol(columns, /*drop_path=*/0.2);
    model->to(at::kDouble);
    at::Tensor x = at::randn({2, 3, 32, 32}, at::kDouble);
    for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full})
      for (int64_t levels : {1, 3, 4, 9}) {
        reversible::ModeComparison cmp;
        cmp.mode = mode;
        cmp.keep_levels = levels;
        cmp.keep_matmuls = 1;
        cmp.seed = 11;
        INFO("columns ", columns);
        check_against_plain(model, x, cmp);
      }
  }
}

TEST_CASE("kept levels with a loss on the lowest level only: the states below them are rebuilt on demand") {
  for (uint64_t seed : {14, 15}) {
    at::manual_seed(seed);
    RevCol model = small_revcol(5, 0.9, 1.0);
    model->to(at::kDouble);
    at::Tensor x = at::randn({2, 3, 32, 32}, at::kDouble);
    auto first_only = [&](const at::Tensor& in) { return std::vector<at::Tensor>{model->forward(in)[0]}; };
    for (int64_t levels : {1, 2}) {
      reversible::ModeComparison cmp;
      cmp.mode = MemoryMode::Full;
      cmp.keep_levels = levels;
      cmp.seed = seed;
      const auto report = reversible::compare_memory_modes(*model, first_only, x, cmp);
      INFO("seed ", seed, ", kept levels ", levels);
      CHECK(report.rng_stream_equal);
      CHECK(report.worst_overall() <= 1e-8);
    }
  }
}

TEST_CASE("kept matrix products are not multiplied again: a step runs the contracting ones once, not twice") {
  // Counts the forward products of one training step (addmm, or oneDNN's fused linear where no gradient is
  // recorded; the backward's are mm).
  static thread_local int64_t addmm_calls = 0;
  const auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
        const std::string name = fn.name();
        if (name == "aten::addmm" || name == "mkldnn::_linear_pointwise") ++addmm_calls;
        return nullptr;
      }));
  at::manual_seed(24);
  RevCol model = small_revcol(3, 0.0);
  at::Tensor x = at::randn({1, 3, 32, 32});
  auto step_products = [&](MemoryMode mode, int64_t matmuls) {
    reversible::set_memory_mode(*model, mode, 0, 0, matmuls);
    model->column_options().drift_check_every(0);  // the drift monitor's forward would count too
    addmm_calls = 0;
    auto outs = model->forward(x);
    at::Tensor loss = outs[0].sum();
    for (size_t i = 1; i < outs.size(); ++i) loss = loss + outs[i].sum();
    loss.backward();
    return addmm_calls;
  };
  // Per column five ConvNeXt blocks of two products (C -> 4C, 4C -> C), and from the second column on three
  // upsampling ones (C_k+1 -> C_k): 36 in all. Kept are the 3 x 5 + 2 x 3 contracting ones; the 15 widening ones are
  // multiplied again.
  const int64_t plain = step_products(MemoryMode::Off, 0);
  CHECK(plain == 36);
  CHECK(step_products(MemoryMode::Column, 0) == 2 * plain);
  CHECK(step_products(MemoryMode::Column, 3) == plain + 15);
  CHECK(step_products(MemoryMode::Full, 3) == plain + 15);
  CHECK(step_products(MemoryMode::Column, 1) == 2 * plain - 5 - 3);  // the last column's only
  at::removeCallback(handle);
}

TEST_CASE("kept columns are not recomputed: each of their levels runs once per step, the others twice") {
  at::manual_seed(22);
  ToyStack toy(ToyOptions{3, 2, 4, 0.5, 0.1});
  const at::Tensor x = at::randn({2, 3, 6, 6});
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full})
    for (int64_t keep : {0, 1, 3}) {
      reversible::set_memory_mode(*toy, mode, 0, keep);
      toy->column_options().drift_check_every(0);
      for (auto& level : toy->all_levels) level->calls = 0;
      auto outs = toy->forward(x);
      (outs[0].sum() + outs[1].sum()).backward();
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 2; ++k) {
          INFO("mode ", reversible::to_string(mode), ", keep ", keep, ", column ", j, ", level ", k);
          CHECK(toy->all_levels[j * 2 + k]->calls == (j >= 4 - keep ? 1 : 2));
        }
    }
}

TEST_CASE("kept levels are not recomputed: in every column they run once per step, the levels below twice") {
  at::manual_seed(26);
  ToyStack toy(ToyOptions{3, 3, 4, 0.5, 0.1});
  const at::Tensor x = at::randn({2, 3, 6, 6});
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full})
    for (int64_t levels : {0, 1, 2, 3}) {
      reversible::set_memory_mode(*toy, mode, 0, /*keep_columns=*/1, 0, levels);
      toy->column_options().drift_check_every(0);
      for (auto& level : toy->all_levels) level->calls = 0;
      auto outs = toy->forward(x);
      (outs[0].sum() + outs[1].sum() + outs[2].sum()).backward();
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 3; ++k) {
          INFO("mode ", reversible::to_string(mode), ", kept levels ", levels, ", column ", j, ", level ", k);
          CHECK(toy->all_levels[j * 3 + k]->calls == (j == 3 || k >= 3 - levels ? 1 : 2));
        }
    }
}

TEST_CASE("kept levels trade activation memory for recompute: the upper levels are the cheap ones, all is plain") {
  auto activation_bytes = [](int64_t levels, MemoryMode mode) {
    at::manual_seed(12);
    RevCol model(RevColOptions({16, 32, 48, 64}, {1, 1, 1, 1}, 4).alpha_init(1.0));
    reversible::set_memory_mode(*model, mode, 0, 0, 0, levels);
    at::Tensor x = at::randn({2, 3, 128, 128});
    return testing::step_activation_bytes([&] { return model->forward(x); });
  };
  const int64_t none = activation_bytes(0, MemoryMode::Column), top = activation_bytes(1, MemoryMode::Column);
  const int64_t three = activation_bytes(3, MemoryMode::Column), all = activation_bytes(4, MemoryMode::Column);
  const int64_t off = activation_bytes(0, MemoryMode::Off), full_top = activation_bytes(1, MemoryMode::Full);
  INFO("kept levels 0: ", none, ", 1: ", top, ", 3: ", three, ", 4: ", all, ", off: ", off, ", full 1: ", full_top);
  CHECK(none < top);
  CHECK(top < three);
  CHECK(three < off);
  // The top level (4x4 here) holds a small part of what plain autograd keeps: at 4x the channels of level 0 and
  // 1/64 of its pixels, about 4% of a column's internals.
  CHECK(top - none < 0.05 * off);
  CHECK(full_top < top);
  CHECK(all == off);
}

TEST_CASE("kept columns trade activation memory for recompute: more kept, more memory, all kept is plain") {
  auto activation_bytes = [](int64_t keep, MemoryMode mode) {
    at::manual_seed(12);
    RevCol model(RevColOptions({16, 32, 48, 64}, {1, 1, 1, 1}, 4).alpha_init(1.0));
    reversible::set_memory_mode(*model, mode, 0, keep);
    at::Tensor x = at::randn({2, 3, 128, 128});
    return testing::step_activation_bytes([&] { return model->forward(x); });
  };
  const int64_t full0 = activation_bytes(0, MemoryMode::Full), full1 = activation_bytes(1, MemoryMode::Full);
  const int64_t full2 = activation_bytes(2, MemoryMode::Full), all = activation_bytes(4, MemoryMode::Column);
  const int64_t off = activation_bytes(0, MemoryMode::Off);
  INFO("keep 0: ", full0, ", 1: ", full1, ", 2: ", full2, ", 4: ", all, ", off: ", off);
  CHECK(full0 < full1);
  CHECK(full1 < full2);
  CHECK(full2 < all);
  // One kept column costs about a quarter of plain autograd's activations.
  CHECK(full2 - full1 > 0.15 * off);
  CHECK(full2 - full1 < 0.35 * off);
  CHECK(all == off);
}

TEST_CASE("a loss on some outputs only: states no cell rebuilt are rebuilt on demand") {
  at::manual_seed(5);
  RevCol model = small_revcol(3, 0.1);
  model->to(at::kDouble);
  at::Tensor x = at::randn({1, 3, 32, 32}, at::kDouble);
  auto first_only = [&](const at::Tensor& in) { return std::vector<at::Tensor>{model->forward(in)[0]}; };
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full})
    CHECK(compare(*model, first_only, x, mode).worst_overall() <= 1e-8);
}

TEST_CASE("states rebuilt on demand in a chain replay each cell's drop path, not the last restored one") {
  // A loss on level 0 alone: in full mode the upper input of each level-0 cell is rebuilt by the cell above it in
  // the next column, whose own lower input is rebuilt by yet another cell; each recompute must draw its own masks
  // after those rebuilds, not before them.
  for (uint64_t seed : {11, 12, 13}) {
    at::manual_seed(seed);
    RevCol model = small_revcol(5, 0.9, 1.0);
    model->to(at::kDouble);
    at::Tensor x = at::randn({4, 3, 32, 32}, at::kDouble);
    auto first_only = [&](const at::Tensor& in) { return std::vector<at::Tensor>{model->forward(in)[0]}; };
    INFO("seed ", seed);
    CHECK(compare(*model, first_only, x, MemoryMode::Full).worst_overall() <= 1e-8);
  }
}

TEST_CASE("a level with BatchNorm: running statistics move once per step, as in plain autograd") {
  at::manual_seed(6);
  ToyOptions o{3, 2, 3, 1.0, 0.0, true};
  ToyStack toy(o);
  toy->to(at::kDouble);
  at::Tensor x = at::randn({4, 3, 6, 6}, at::kDouble);
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
    const auto report = compare(
        *toy, [&](const at::Tensor& in) { return toy->forward(in); }, x, mode);
    CHECK(report.worst("buffers").relative <= 1e-12);
    CHECK(!report.worst("buffers").name.empty());
    CHECK(report.worst_overall() <= 1e-8);
  }
  // One reversible step from fresh statistics: each BatchNorm counted exactly one batch.
  ToyStack fresh(o, MemoryMode::Full);
  fresh->to(at::kDouble);
  auto outs = fresh->forward(x);
  (outs[0].sum() + outs[1].sum()).backward();
  for (const auto& b : fresh->named_buffers())
    if (b.key().find("num_batches_tracked") != std::string::npos) CHECK(b.value().item<int64_t>() == 1);
}

TEST_CASE("CPU bf16 autocast: the recompute runs under the forward's autocast state") {
  at::manual_seed(8);
  ToyStack toy(ToyOptions{4, 2, 3, 1.0, 0.0});
  at::Tensor x = at::randn({2, 4, 8, 8});
  AutocastState bf16;
  bf16.cpu_enabled = true;
  bf16.cpu_dtype = at::kBFloat16;

  auto run = [&](MemoryMode mode) {
    reversible::set_memory_mode(*toy, mode);
    for (auto& p : toy->parameters()) p.mutable_grad() = at::Tensor();
    for (auto& l : toy->all_levels) l->seen_with_grad.clear();
    at::Tensor in = x.clone().requires_grad_(true);
    std::vector<at::Tensor> outs;
    {
      AutocastStateGuard autocast(bf16);
      outs = toy->forward(in);
    }
    (outs[0].to(at::kFloat).sum() + outs[1].to(at::kFloat).pow(2).sum()).backward();  // backward outside autocast
    std::vector<at::Tensor> grads{in.grad()};
    for (const auto& p : toy->parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    return grads;
  };
  // Each reversible mode before plain autograd, so that nothing plain autograd leaves behind (autograd-connected
  // casts in autocast's cache) can help it; models/autocast_first_* run the seed's model first in a fresh process.
  std::vector<std::vector<at::Tensor>> reversible_grads;
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
    reversible_grads.push_back(run(mode));
    size_t recomputes = 0;
    for (const auto& l : toy->all_levels)
      for (auto dtype : l->seen_with_grad) {
        CHECK((dtype == at::kBFloat16));
        ++recomputes;
      }
    CHECK(recomputes == toy->all_levels.size());  // every level recomputed once, in bf16
  }
  const auto plain = run(MemoryMode::Off);
  for (const auto& grads : reversible_grads) {
    for (size_t i = 0; i < grads.size(); ++i) CHECK(reversible::relative_difference(grads[i], plain[i]) <= 2e-2);
  }
  CHECK((AutocastState::current() == AutocastState{}));  // nothing leaked out of backward
}

TEST_CASE("gradient accumulation over three steps equals plain autograd") {
  at::manual_seed(9);
  RevCol model = small_revcol(3, 0.2);
  model->to(at::kDouble);
  at::Tensor x = at::randn({1, 3, 32, 32}, at::kDouble);
  auto accumulate = [&](MemoryMode mode) {
    reversible::set_memory_mode(*model, mode);
    for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
    at::manual_seed(10);
    for (int step = 0; step < 3; ++step) {
      auto outs = model->forward(x * (step + 1));
      at::Tensor loss = at::zeros({}, at::kDouble);
      for (const auto& o : outs) loss = loss + o.pow(2).mean();
      loss.backward();
    }
    std::map<std::string, at::Tensor> grads;
    for (const auto& p : model->named_parameters())
      grads[p.key()] = p.value().grad().defined() ? p.value().grad().clone() : at::Tensor();
    return grads;
  };
  const auto plain = accumulate(MemoryMode::Off);
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
    auto grads = accumulate(mode);
    double worst = 0;
    for (const auto& [name, g] : plain) worst = std::max(worst, reversible::relative_difference(grads[name], g));
    CHECK(worst <= 1e-8);
  }
}

TEST_CASE("a second backward through one graph is a clear error") {
  ToyStack toy(ToyOptions{});
  at::Tensor x = at::randn({1, 3, 4, 4}, at::TensorOptions().requires_grad(true));
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
    reversible::set_memory_mode(*toy, mode);
    auto outs = toy->forward(x);
    at::Tensor loss = outs[0].sum() + outs[1].sum();
    loss.backward({}, /*retain_graph=*/true);
    CHECK_THROWS_WITH(loss.backward(), doctest::Contains("backward through a reversible column stack a second time"));
  }
}

TEST_CASE("an output changed in place before backward is a clear error, not a wrong gradient") {
  // Full mode rebuilds every state from the outputs, so it must see them as the forward left them.
  ToyStack toy(ToyOptions{}, MemoryMode::Full);
  at::Tensor x = at::randn({1, 3, 4, 4}, at::TensorOptions().requires_grad(true));
  auto outs = toy->forward(x);
  at::Tensor loss = outs[0].sum() + outs[1].sum();
  {
    at::NoGradGuard no_grad;
    outs[1].add_(1.0);
  }
  CHECK_THROWS_WITH(loss.backward(), doctest::Contains("was modified in place after the forward pass"));
}

TEST_CASE("no grad: a plain forward with the same outputs and no graph") {
  at::manual_seed(11);
  RevCol model = small_revcol(2, 0.0);
  at::Tensor x = at::randn({1, 3, 32, 32});
  auto with_graph = model->forward(x);
  at::NoGradGuard no_grad;
  auto plain = model->forward(x);
  for (size_t k = 0; k < plain.size(); ++k) {
    CHECK(!plain[k].requires_grad());
    CHECK(at::equal(plain[k], with_graph[k].detach()));
  }
}

TEST_CASE("activation memory: full is flat in columns, column is below off") {
  auto activation_bytes = [](int64_t columns, MemoryMode mode) {
    at::manual_seed(12);
    RevCol model(RevColOptions({16, 32, 48, 64}, {1, 1, 1, 1}, columns).alpha_init(1.0));
    reversible::set_memory_mode(*model, mode);
    at::Tensor x = at::randn({2, 3, 128, 128});
    return testing::step_activation_bytes([&] { return model->forward(x); });
  };
  const int64_t full2 = activation_bytes(2, MemoryMode::Full), full8 = activation_bytes(8, MemoryMode::Full);
  const int64_t column8 = activation_bytes(8, MemoryMode::Column), off8 = activation_bytes(8, MemoryMode::Off);
  INFO("full 2: ", full2, ", full 8: ", full8, ", column 8: ", column8, ", off 8: ", off8);
  CHECK(full8 <= 1.10 * full2);
  CHECK(column8 < off8);
  CHECK(full8 < column8);
}

REVKIT_GPU_TEST_CASE("GPU: every memory mode equals plain autograd on CUDA, dropout replayed on the CUDA generator") {
  REQUIRE(at::hasCUDA());
  at::manual_seed(3);
  ToyStack toy(ToyOptions{3, 2, 3, 0.7, 0.5});
  toy->to(c10::Device(c10::kCUDA, 0), at::kDouble);
  const at::Tensor x = at::randn({2, 3, 8, 8}, at::TensorOptions(at::kDouble).device(c10::kCUDA, 0));
  auto forward = [&](const at::Tensor& in) { return toy->forward(in); };
  for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full, MemoryMode::Auto}) {
    const auto report = compare(*toy, forward, x, mode);
    INFO("mode ", reversible::to_string(mode), ": worst ", report.worst_overall());
    CHECK(report.rng_stream_equal);
    CHECK(report.worst_overall() <= reversible::default_tolerance(mode, at::kDouble));
  }
  // Without replay the CUDA generator draws other masks: the comparison can tell.
  toy->column_options().preserve_rng_state(false);
  CHECK(compare(*toy, forward, x, MemoryMode::Full).worst("parameter gradients").relative > 1e-2);
}

REVKIT_GPU_TEST_CASE("GPU: BatchNorm inside reversible levels moves its statistics once per step on CUDA") {
  REQUIRE(at::hasCUDA());
  at::manual_seed(6);
  ToyOptions o{3, 2, 3, 1.0, 0.0, true};
  ToyStack fresh(o, MemoryMode::Full);
  fresh->to(c10::Device(c10::kCUDA, 0), at::kDouble);
  const at::Tensor x = at::randn({4, 3, 6, 6}, at::TensorOptions(at::kDouble).device(c10::kCUDA, 0));
  auto outs = fresh->forward(x);
  (outs[0].sum() + outs[1].sum()).backward();
  int64_t counted = 0;
  for (const auto& b : fresh->named_buffers())
    if (b.key().find("num_batches_tracked") != std::string::npos) {
      CHECK(b.value().item<int64_t>() == 1);
      ++counted;
    }
  CHECK(counted > 0);
  CHECK(compare(
            *fresh, [&](const at::Tensor& in) { return fresh->forward(in); }, x, MemoryMode::Full)
            .worst("buffers")
            .relative <= 1e-12);
}

REVKIT_GPU_TEST_CASE("GPU: fp16 and bf16 CUDA autocast: every mode's gradients are those of plain autograd") {
  REQUIRE(at::hasCUDA());
  for (const c10::ScalarType dtype : {c10::kHalf, c10::kBFloat16}) {
    at::manual_seed(8);
    ToyStack toy(ToyOptions{4, 2, 3, 1.0, 0.0});
    toy->to(c10::Device(c10::kCUDA, 0));
    const at::Tensor x = at::randn({2, 4, 8, 8}, at::TensorOptions().device(c10::kCUDA, 0));
    AutocastState state;
    state.cuda_enabled = true;
    state.cuda_dtype = dtype;
    AutocastStateGuard autocast(state);
    for (MemoryMode mode : {MemoryMode::Column, MemoryMode::Full}) {
      const auto report = compare(
          *toy, [&](const at::Tensor& in) { return toy->forward(in); }, x, mode);
      INFO(c10::toString(dtype), " mode ", reversible::to_string(mode), ": worst ", report.worst_overall());
      CHECK(report.worst_overall() <= reversible::default_tolerance(mode, dtype));
    }
    // The convolutions ran in the low precision, so the outputs are in it.
    CHECK((toy->forward(x)[0].scalar_type() == dtype));
  }
}

namespace {
// A level that halves its input's width when told to (a shape the state cannot take), or returns nothing.
class MisbehavingLevel : public reversible::ReversibleLevel {
 public:
  enum Fault { kNone, kWrongShape, kNoTensor };
  explicit MisbehavingLevel(Fault fault) : fault_(fault) {}
  at::Tensor forward(const at::Tensor& lower, const at::Tensor&) override {
    if (fault_ == kNoTensor) return at::Tensor();
    return fault_ == kWrongShape ? lower.narrow(-1, 0, lower.size(-1) / 2) * 2.0 : lower * 2.0;
  }

 private:
  Fault fault_;
};

// Two columns of one level, the second with `fault`, and alpha of `alpha_shape`.
reversible::ColumnGrid faulty_grid(torch::nn::Module& owner, MisbehavingLevel::Fault fault,
                                   std::vector<int64_t> alpha_shape = {1}) {
  reversible::ColumnGrid grid;
  grid.add_level(owner, "a", std::make_shared<MisbehavingLevel>(MisbehavingLevel::kNone), 0, at::Tensor());
  grid.add_level(owner, "b", std::make_shared<MisbehavingLevel>(fault), 1, at::ones(alpha_shape));
  return grid;
}
}  // namespace

TEST_CASE("a backbone's malformed grid or level output is named, in every mode, not left to a broadcasting error") {
  const at::Tensor x = at::randn({2, 3, 4, 4});
  for (MemoryMode mode : {MemoryMode::Off, MemoryMode::Column, MemoryMode::Full}) {
    INFO(reversible::to_string(mode));
    torch::nn::Module owner;
    CHECK_THROWS_WITH_AS(reversible::run_columns(faulty_grid(owner, MisbehavingLevel::kWrongShape), x, mode),
                         "column grid: level 0 of column 1 returned a tensor of shape [2, 3, 4, 2], but the state it "
                         "updates has shape [2, 3, 4, 4] (a level's output must have its state's shape)",
                         InputError);
    torch::nn::Module owner2;
    CHECK_THROWS_WITH_AS(reversible::run_columns(faulty_grid(owner2, MisbehavingLevel::kNoTensor), x, mode),
                         "column grid: level 0 of column 1 returned no tensor", InputError);
    torch::nn::Module owner3;
    CHECK_THROWS_WITH_AS(reversible::run_columns(faulty_grid(owner3, MisbehavingLevel::kNone, {1, 5, 1, 1}), x, mode),
                         "column grid: alpha 0 of column 1 has shape [1, 5, 1, 1], which does not broadcast to its "
                         "state's shape [2, 3, 4, 4]",
                         InputError);
    torch::nn::Module owner4;
    // A per-channel alpha broadcasts, and the grid runs.
    CHECK(reversible::run_columns(faulty_grid(owner4, MisbehavingLevel::kNone, {1, 3, 1, 1}), x, mode)[0].equal(
        x * 2.0 + x * 2.0));
  }
  torch::nn::Module owner;
  reversible::ColumnGrid empty;
  CHECK_THROWS_WITH_AS(reversible::run_columns(empty, x, MemoryMode::Column),
                       "column grid: a grid needs at least one column and one level", InputError);
  reversible::ColumnGrid ragged = faulty_grid(owner, MisbehavingLevel::kNone);
  ragged.add_level(owner, "c", std::make_shared<MisbehavingLevel>(MisbehavingLevel::kNone), 1, at::ones({1}));
  CHECK_THROWS_WITH_AS(reversible::run_columns(ragged, x, MemoryMode::Column),
                       "column grid: column 1 has 2 levels and 2 alphas, where column 0 has 1", InputError);
}
