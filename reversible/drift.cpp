#include "reversible/drift.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/rng_state.h"

namespace revkit::reversible {

std::vector<double> measure_drift(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options) {
  at::NoGradGuard no_grad;
  const int64_t N = grid.columns(), L = grid.num_levels();
  clamp_alphas(grid, options.alpha_floor());
  const auto devices = cuda_devices_of(x);
  RngForkGuard rng_fork(devices);

  std::vector<std::pair<at::Tensor, at::Tensor>> buffers;  // (buffer, value before the check)
  for (const auto& column : grid.levels)
    for (const auto& level : column)
      for (const auto& b : level->buffers()) buffers.emplace_back(b, b.clone());

  std::vector<std::vector<at::Tensor>> states(N);
  std::vector<std::vector<RngState>> rng(N, std::vector<RngState>(L));
  for (int64_t j = 0; j < N; ++j) {
    states[j].resize(L);
    for (int64_t k = 0; k < L; ++k) {
      rng[j][k] = RngState::capture(devices);
      const at::Tensor& lower = k == 0 ? x : states[j][k - 1];
      at::Tensor upper = j > 0 && k + 1 < L ? states[j - 1][k + 1] : at::Tensor();
      at::Tensor f = grid.levels[j][k]->forward(lower, upper);
      states[j][k] = j > 0 ? grid.alphas[j][k] * states[j - 1][k] + f : f;
    }
  }

  std::vector<double> error(std::max<int64_t>(N - 1, 0), 0.0);
  std::vector<at::Tensor> current = states[N - 1];
  for (int64_t j = N - 1; j >= 1; --j) {
    std::vector<at::Tensor> previous(L);
    for (int64_t k = L - 1; k >= 0; --k) {
      rng[j][k].restore();
      const at::Tensor& lower = k == 0 ? x : current[k - 1];
      at::Tensor upper = k + 1 < L ? previous[k + 1] : at::Tensor();
      previous[k] = (current[k] - grid.levels[j][k]->forward(lower, upper)) / grid.alphas[j][k];
      const at::Tensor& truth = states[j - 1][k];
      const double denom = std::max(truth.norm().item<double>(), 1e-30);
      error[j - 1] = std::max(error[j - 1], (previous[k] - truth).norm().item<double>() / denom);
    }
    current = std::move(previous);
  }
  for (auto& [buffer, value] : buffers) buffer.copy_(value);
  return error;
}

}  // namespace revkit::reversible
