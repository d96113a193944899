#pragma once
// The forward sweep over a column grid, shared by the plain and reversible forwards and the drift monitor. An
// internal header of reversible/: not installed.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <vector>

#include "core/error.h"
#include "reversible/reversible_function.h"

namespace revkit::reversible::detail {

// Every buffer of every level (BatchNorm's running statistics, ...): what a check run puts back when it is done.
inline std::vector<at::Tensor> grid_buffers(const ColumnGrid& grid) {
  std::vector<at::Tensor> buffers;
  for (const auto& column : grid.levels)
    for (const auto& level : column)
      for (const auto& b : level->buffers()) buffers.push_back(b);
  return buffers;
}

// The grid a backbone built, checked before anything runs it (the sweep, the drift monitor, auto's cost probe): its
// mistakes are named as the user's (a plugin's author is one), not as revkit's.
inline void check_grid(const ColumnGrid& grid) {
  if (grid.columns() == 0 || grid.num_levels() == 0)
    throw InputError("column grid: a grid needs at least one column and one level");
  if (grid.alphas.size() != grid.levels.size())
    throw InputError(fmt::format("column grid: {} columns of levels but {} columns of alphas", grid.levels.size(),
                                 grid.alphas.size()));
  for (int64_t j = 0; j < grid.columns(); ++j) {
    if (static_cast<int64_t>(grid.levels[j].size()) != grid.num_levels() ||
        grid.alphas[j].size() != grid.levels[j].size())
      throw InputError(fmt::format("column grid: column {} has {} levels and {} alphas, where column 0 has {}", j,
                                   grid.levels[j].size(), grid.alphas[j].size(), grid.num_levels()));
    for (int64_t k = 0; k < grid.num_levels(); ++k) {
      if (!grid.levels[j][k]) throw InputError(fmt::format("column grid: level {} of column {} is null", k, j));
      if (j > 0 && !grid.alphas[j][k].defined())
        throw InputError(fmt::format("column grid: alpha {} of column {} is undefined", k, j));
    }
  }
}

// c_k[j] = alpha_k[j] * c_k[j-1] + F_k[j](...), or F alone in the first column. A level's output that cannot be
// that (none, or not the shape of the state it updates) or an alpha that would change the state's shape is the
// backbone's mistake: named here, not left to a broadcasting error deep in the sweep.
inline at::Tensor combine(int64_t j, int64_t k, const at::Tensor& f, const at::Tensor& alpha,
                          const at::Tensor& previous) {
  if (!f.defined()) throw InputError(fmt::format("column grid: level {} of column {} returned no tensor", k, j));
  if (!previous.defined()) return f;
  if (f.sizes() != previous.sizes())
    throw InputError(
        fmt::format("column grid: level {} of column {} returned a tensor of shape [{}], but the state "
                    "it updates has shape [{}] (a level's output must have its state's shape)",
                    k, j, fmt::join(f.sizes(), ", "), fmt::join(previous.sizes(), ", ")));
  const int64_t extra = previous.dim() - alpha.dim();
  bool broadcasts = extra >= 0;
  for (int64_t d = 0; broadcasts && d < alpha.dim(); ++d)
    broadcasts = alpha.size(d) == 1 || alpha.size(d) == previous.size(d + extra);
  if (!broadcasts)
    throw InputError(
        fmt::format("column grid: alpha {} of column {} has shape [{}], which does not broadcast to "
                    "its state's shape [{}]",
                    k, j, fmt::join(alpha.sizes(), ", "), fmt::join(previous.sizes(), ", ")));
  return alpha * previous + f;
}

// Column by column, level by level; `cell(j, k, lower, upper, previous)` gives c_k[j] (upper and previous are
// undefined where the recurrence has none). Runs columns first..N-1 from `state`, column first - 1's states (empty
// when first = 0), and returns the last column's states.
template <typename Cell>
std::vector<at::Tensor> sweep(const ColumnGrid& grid, const at::Tensor& x, Cell cell, int64_t first = 0,
                              std::vector<at::Tensor> state = {}) {
  const int64_t L = grid.num_levels();
  for (int64_t j = first; j < grid.columns(); ++j) {
    std::vector<at::Tensor> next(L);
    for (int64_t k = 0; k < L; ++k) {
      const at::Tensor& lower = k == 0 ? x : next[k - 1];
      const at::Tensor upper = j > 0 && k + 1 < L ? state[k + 1] : at::Tensor();
      next[k] = cell(j, k, lower, upper, j > 0 ? state[k] : at::Tensor());
    }
    state = std::move(next);
  }
  return state;
}

}  // namespace revkit::reversible::detail
