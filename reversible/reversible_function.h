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
  Auto,    // per column stored, kept or rebuilt, planned under a memory budget from measured costs, with chains of
           // inverses no longer than the drift monitor allows (ReversibleModule, reversible/memory_plan.h)
};

// "off", "column", "full", "auto"; throws InputError for anything else.
MemoryMode parse_memory_mode(const std::string& text);
std::string to_string(MemoryMode mode);

struct ColumnOptions {
  /* implicit */ ColumnOptions(MemoryMode memory_mode = MemoryMode::Column) : memory_mode_(memory_mode) {}
  TORCH_ARG(MemoryMode, memory_mode);
  // In Full mode, also keep the states of every k-th column counted back from the last recomputed one, which
  // bounds how many inverses (and so how much drift) stand between a column and a stored state. 0 keeps only that
  // last column. Auto mode's memory plan sets it.
  TORCH_ARG(int64_t, store_every) = 0;
  // Full and Auto modes read the drift monitor (on the batch's first two samples) on the first training forward and
  // then every this many (0: never).
  TORCH_ARG(int64_t, drift_check_every) = 100;
  // Auto: chains of inverses are at most k - 1 long for the largest k whose rebuilt states stay within this
  // relative error of the forward's (float32 parameter gradients then stay within about 1e-4 of plain autograd's).
  TORCH_ARG(double, drift_tolerance) = 1e-5;
  // Full: a column rebuilt with a relative error above this is named in a warning, once per column.
  TORCH_ARG(double, drift_warning) = 1e-3;
  // Keep the internals of the last this many columns, as plain autograd does: their levels are not recomputed in
  // backward, which saves a forward of each per step for the memory of its activations. The last columns are the
  // ones to keep: their recompute would run right after their own forward. Column, Full and Auto modes (Auto's
  // memory plan sets it).
  TORCH_ARG(int64_t, keep_columns) = 0;
  // In the last this many recomputed columns, each cell keeps the outputs of its level's contracting matrix
  // products (its reversible::linear calls, reversible/kept_matmuls.h) from the forward pass, and the recompute
  // takes them back instead of multiplying again: a third of a RevCol recompute's time for a tenth of the
  // internals' memory. Column, Full and Auto modes (Auto's memory plan sets it); not with recompute_chunks > 1,
  // whose pieces run their blocks again in backward.
  TORCH_ARG(int64_t, keep_matmuls) = 0;
  // In every recomputed column, keep the internals of the last this many levels, as plain autograd does: their
  // cells are not recomputed in backward. In RevCol the upper levels are the cheap ones to keep: they take as many
  // operations as the lower ones at a fraction of the activations. A kept level's states are kept in every column
  // (no inverse rebuilds them). Column, Full and Auto modes; as many as the grid has levels is plain autograd.
  TORCH_ARG(int64_t, keep_levels) = 0;
  // Auto: the activation memory the grid may take in a training step, in MiB; 0: half of what the device has
  // available when the plan is made (reversible/memory_plan.h).
  TORCH_ARG(double, memory_budget_mb) = 0.0;
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
  // The grid of the first n columns (the same levels and alphas, shared).
  ColumnGrid first_columns(int64_t n) const;

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

// What a memory mode does with each column of a training forward: rebuild its states by the inverse (Reversed),
// store its states and recompute its levels (Stored), or keep its levels' internals (Kept: no recompute).
enum class ColumnRole { Reversed, Stored, Kept };
// The role of each of a grid's `columns` columns under `options`: in Off mode every column is Kept; otherwise the
// last keep_columns() are Kept, the last of the others is always Stored, and Full and Auto modes store every
// store_every()-th counted back from it.
std::vector<ColumnRole> column_roles(const ColumnOptions& options, int64_t columns);
// Whether each column keeps its matrix products' outputs: the last keep_matmuls() of the columns that are not Kept.
std::vector<bool> matmul_columns(const ColumnOptions& options, int64_t columns);
// The lowest of a grid's `levels` levels that every recomputed column keeps (keep_levels()): levels from it up are
// plain autograd, the ones below recomputed; 0 when every level is kept.
int64_t first_kept_level(const ColumnOptions& options, int64_t levels);

}  // namespace revkit::reversible
