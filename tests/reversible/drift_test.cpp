#include "reversible/drift.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "backbones/revcol.h"
#include "core/rng_state.h"
#include "toy_levels.h"

using namespace revkit;

namespace {
std::vector<double> revcol_t_drift(int64_t columns, double alpha) {
  at::manual_seed(0);
  // RevCol-T channels and layers, float32, a 64x64 input: the setting of the drift table in DESIGN.md.
  RevCol model(revcol_variant("tiny").columns(columns).drop_path(0.0).alpha_init(alpha));
  at::Tensor x = at::randn({1, 3, 64, 64});
  return reversible::measure_drift(*model, x);
}
}  // namespace

TEST_CASE("drift at the seed's alpha 0.5 grows from the last column to the first; at alpha 1 it stays small") {
  const auto half = revcol_t_drift(8, 0.5);
  const auto one = revcol_t_drift(8, 1.0);
  REQUIRE(half.size() == 7);
  REQUIRE(one.size() == 7);
  INFO("alpha 0.5: column 0 ", half[0], ", column 6 ", half[6], "; alpha 1: column 0 ", one[0]);
  // Each inverse divides by alpha = 0.5, so error compounds toward column 0.
  CHECK(half[0] > 100 * half[6]);
  CHECK(half[0] > 1e-3);
  for (double e : one) CHECK(e < 1e-4);
}

TEST_CASE("kept levels are not rebuilt: no error of their own, and the levels below them rebuilt from exact states") {
  at::manual_seed(0);
  RevCol model(revcol_variant("tiny").columns(6).drop_path(0.0).alpha_init(0.5));
  at::Tensor x;
  {
    at::NoGradGuard no_grad;
    x = model->column_input(at::randn({1, 3, 64, 64}));
  }
  auto drift = [&](int64_t levels) {
    return reversible::measure_drift(model->column_grid(), x, reversible::ColumnOptions().keep_levels(levels));
  };
  const auto none = drift(0), top = drift(1), three = drift(3), all = drift(4);
  INFO("column 0: none ", none[0], ", top ", top[0], ", three ", three[0]);
  for (size_t j = 0; j < none.size(); ++j) {
    CHECK(top[j] <= none[j]);
    CHECK(three[j] <= top[j]);
    CHECK(all[j] == 0.0);
  }
  CHECK(three[0] < none[0]);
  CHECK(three[0] > 0.0);  // level 0 is still rebuilt
}

TEST_CASE("drift in float64 is tiny, and the check run leaves the RNG stream and buffers alone") {
  at::manual_seed(1);
  testing::ToyStack toy(testing::ToyOptions{3, 2, 4, 0.5, 0.3, true});
  toy->to(at::kDouble);
  at::Tensor x = at::randn({2, 3, 6, 6}, at::kDouble);
  std::vector<at::Tensor> before;
  for (const auto& b : toy->buffers()) before.push_back(b.clone());
  const at::Tensor next_draw = [] {
    RngForkGuard fork;
    return at::rand({4});
  }();
  const auto drift = reversible::measure_drift(*toy, x);
  CHECK(drift.size() == 3);
  for (double e : drift) CHECK(e < 1e-12);
  CHECK(at::equal(at::rand({4}), next_draw));
  size_t i = 0;
  for (const auto& b : toy->buffers()) CHECK(at::equal(b, before[i++]));
}

namespace {
// Passes its input on in the forward sweep, then returns NaN: an inverse that diverges.
class DivergingLevel : public reversible::ReversibleLevel {
 public:
  explicit DivergingLevel(int64_t good_calls) : good_calls_(good_calls) {}
  at::Tensor forward(const at::Tensor& lower, const at::Tensor&) override {
    return calls_++ < good_calls_ ? lower * 1.0 : at::full_like(lower, NAN);
  }

 private:
  int64_t good_calls_, calls_ = 0;
};
}  // namespace

TEST_CASE("a rebuild that diverges reads NaN, not 0: the monitor's maximum keeps it") {
  reversible::ColumnGrid grid;
  torch::nn::Module owner;
  const int64_t columns = 3;
  auto level = std::make_shared<DivergingLevel>(columns);  // one level shared by every column: it counts all calls
  for (int64_t j = 0; j < columns; ++j)
    grid.add_level(owner, "level" + std::to_string(j), level, j, at::full({1}, 0.5));
  const auto drift =
      reversible::measure_drift(grid, at::ones({1, 2}), reversible::ColumnOptions(reversible::MemoryMode::Full));
  REQUIRE(drift.size() == 2);
  CHECK(std::isnan(drift[0]));
  CHECK(std::isnan(drift[1]));
}
