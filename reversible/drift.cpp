#include "reversible/drift.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/autocast_state.h"
#include "core/buffer_snapshot.h"
#include "core/rng_state.h"
#include "reversible/grid_sweep.h"

namespace revkit::reversible {

std::vector<double> measure_drift(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options) {
  detail::check_grid(grid);
  at::NoGradGuard no_grad;
  AutocastCacheOffGuard no_cache;  // casts made without grad stay out of autocast's cache
  const int64_t N = grid.columns(), L = grid.num_levels();
  clamp_alphas(grid, options.alpha_floor());
  const auto devices = cuda_devices_of(x);
  RngForkGuard rng_fork(devices);
  BufferRestoreGuard keep_buffers(detail::grid_buffers(grid));

  // The forward, keeping every column's states and each cell's RNG state.
  std::vector<std::vector<at::Tensor>> states(N, std::vector<at::Tensor>(L));
  std::vector<std::vector<RngState>> rng(N, std::vector<RngState>(L));
  detail::sweep(
      grid, x, [&](int64_t j, int64_t k, const at::Tensor& lower, const at::Tensor& upper, const at::Tensor& previous) {
        rng[j][k] = RngState::capture(devices);
        at::Tensor f = grid.levels[j][k]->forward(lower, upper);
        return states[j][k] = detail::combine(j, k, f, grid.alphas[j][k], previous);
      });

  std::vector<double> error(std::max<int64_t>(N - 1, 0), 0.0);
  const int64_t first_kept = first_kept_level(options, L);
  std::vector<at::Tensor> current = states[N - 1];
  for (int64_t j = N - 1; j >= 1; --j) {
    std::vector<at::Tensor> previous(L);
    for (int64_t k = L - 1; k >= 0; --k) {
      if (k >= first_kept) {
        previous[k] = states[j - 1][k];
        continue;
      }
      rng[j][k].restore();
      const at::Tensor& lower = k == 0 ? x : current[k - 1];
      at::Tensor upper = k + 1 < L ? previous[k + 1] : at::Tensor();
      previous[k] = (current[k] - grid.levels[j][k]->forward(lower, upper)) / grid.alphas[j][k];
      const at::Tensor& truth = states[j - 1][k];
      const double denom = std::max(truth.norm().item<double>(), 1e-30);
      // A diverged rebuild (NaN) is the worst of all, and stays: std::max would drop it.
      const double e = (previous[k] - truth).norm().item<double>() / denom;
      if (std::isnan(e) || e > error[j - 1]) error[j - 1] = e;
    }
    current = std::move(previous);
    states[j].clear();  // column j's truth is no longer needed
  }
  return error;
}

}  // namespace revkit::reversible
