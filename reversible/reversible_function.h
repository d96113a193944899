#pragma once
// The reversible column grid: forward and backward of any reversible column network. A network of L levels of state
// c_0..c_{L-1} passes through N columns; level k of column j computes
//
//     c_k[j] = alpha_k[j] * c_k[j-1] + F_k[j]( c_{k-1}[j], c_{k+1}[j-1] )      (c_{-1}[j] = x, no c_L)
//
// and can be inverted, for k = L-1 down to 0, as c_k[j-1] = (c_k[j] - F_k[j](...)) / alpha_k[j]. The first column
// starts from zero state and its F takes no upper input. RevCol is L = 4; RevNet's additive coupling is L = 2 with
// alpha = 1. In a reversible memory mode the activations inside each F are not kept: backward recomputes them
// from column states that are either stored or reconstructed by the inverse.
#include <torch/arg.h>
#include <torch/nn/module.h>

#include <memory>
#include <string>
#include <vector>

namespace revkit::reversible {

enum class MemoryMode {
  Off,     // plain autograd: every activation kept; the reference path
  Column,  // keep each column's states; recompute inside columns (what the seed does)
  Full,    // keep only the last column's states and x; reconstruct the rest by the inverse
  Auto,    // Full with a stored column every k, k chosen by the drift monitor (ReversibleModule)
};

// "off", "column", "full", "auto"; throws InputError for anything else.
MemoryMode parse_memory_mode(const std::string& text);
std::string to_string(MemoryMode mode);

struct ColumnOptions {
  /* implicit */ ColumnOptions(MemoryMode memory_mode = MemoryMode::Column) : memory_mode_(memory_mode) {}
  TORCH_ARG(MemoryMode, memory_mode);
  // In Full mode, also keep the states of every k-th column counted back from the last, which bounds how many
  // inverses (and so how much drift) stand between a column and a stored state. 0 keeps only the last column.
  // Auto mode sets it from the drift monitor.
  TORCH_ARG(int64_t, store_every) = 0;
  // Full and Auto modes read the drift monitor (on the batch's first sample) on the first training forward and then
  // every this many (0: never).
  TORCH_ARG(int64_t, drift_check_every) = 100;
  // Auto: the largest k whose rebuilt states stay within this relative error of the forward's (float32 parameter
  // gradients then stay within about 1e-4 of plain autograd's).
  TORCH_ARG(double, drift_tolerance) = 1e-5;
  // Full: a column rebuilt with a relative error above this is named in a warning, once per column.
  TORCH_ARG(double, drift_warning) = 1e-3;
  // Inside a level's recompute, run its blocks in this many checkpointed pieces (reversible/chunks.h); 1: whole.
  TORCH_ARG(int64_t, recompute_chunks) = 1;
  // |alpha| is clamped to at least this before every forward, sign kept (the seed's 1e-3).
  TORCH_ARG(double, alpha_floor) = 1e-3;
  // Replay each level's RNG state in the recompute, so dropout and drop path draw the same masks.
  TORCH_ARG(bool, preserve_rng_state) = true;
};

// One cell of the grid: F_k[j](lower, upper). `upper` is undefined in the first column and in the top level.
class ReversibleLevel : public torch::nn::Module {
 public:
  virtual at::Tensor forward(const at::Tensor& lower, const at::Tensor& upper) = 0;
};

struct ColumnGrid {
  std::vector<std::vector<std::shared_ptr<ReversibleLevel>>> levels;  // [column][level]
  std::vector<std::vector<at::Tensor>> alphas;                        // [column][level], broadcastable to c_k

  int64_t columns() const { return static_cast<int64_t>(levels.size()); }
  int64_t num_levels() const { return levels.empty() ? 0 : static_cast<int64_t>(levels.front().size()); }

  // Registers `level` in `owner` as `name` and appends it with its alpha to column `column`, a new column when
  // column == columns(): how a backbone builds its grid, column by column, level by level.
  template <typename Level>
  std::shared_ptr<Level> add_level(torch::nn::Module& owner, const std::string& name, std::shared_ptr<Level> level,
                                   int64_t column, const at::Tensor& alpha) {
    TORCH_CHECK(column >= 0 && column <= columns(), "ColumnGrid::add_level: column ", column, " of a grid with ",
                columns(), " columns");
    if (column == columns()) {
      levels.emplace_back();
      alphas.emplace_back();
    }
    owner.register_module(name, level);
    levels[column].push_back(level);
    alphas[column].push_back(alpha);
    return level;
  }
};

// Runs x through every column and returns the last column's states c_0..c_{L-1}. With grad mode off, or in Off
// mode, this is a plain forward; otherwise one autograd node covers all columns and recomputes in backward.
// Every parameter of the levels and every alpha gets its gradient through that node's inputs, so repeated
// backward calls accumulate exactly as plain autograd does. A second backward through one graph is an error.
std::vector<at::Tensor> run_columns(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options);

// Clamps |alpha| of every alpha in the grid to at least `floor`, keeping the sign (zero becomes +floor).
void clamp_alphas(const ColumnGrid& grid, double floor);

// Columns whose states a memory mode keeps, for a grid of `columns` columns (the last is always kept).
std::vector<bool> stored_columns(const ColumnOptions& options, int64_t columns);

}  // namespace revkit::reversible
