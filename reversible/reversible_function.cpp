#include "reversible/reversible_function.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <fmt/format.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

#include <algorithm>
#include <optional>

#include "core/autocast_state.h"
#include "core/buffer_snapshot.h"
#include "core/error.h"
#include "core/rng_state.h"
#include "reversible/chunks.h"
#include "reversible/grid_sweep.h"
#include "reversible/kept_matmuls.h"

namespace revkit::reversible {

MemoryMode parse_memory_mode(const std::string& text) {
  if (text == "off") return MemoryMode::Off;
  if (text == "column") return MemoryMode::Column;
  if (text == "full") return MemoryMode::Full;
  if (text == "auto") return MemoryMode::Auto;
  throw InputError("unknown memory mode '" + text + "' (expected off, column, full or auto)");
}

std::string to_string(MemoryMode mode) {
  switch (mode) {
    case MemoryMode::Off: return "off";
    case MemoryMode::Column: return "column";
    case MemoryMode::Full: return "full";
    case MemoryMode::Auto: return "auto";
  }
  return "?";
}

void clamp_alphas(const ColumnGrid& grid, double floor) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> alphas, smallest;
  for (const auto& column : grid.alphas)
    for (const auto& a : column)
      if (a.defined()) {
        alphas.push_back(a);
        smallest.push_back(a.abs().min());
      }
  if (alphas.empty()) return;
  const at::Tensor mins = at::stack(smallest).to(at::kCPU, at::kDouble);  // one device sync per forward
  const double* m = mins.data_ptr<double>();
  for (size_t i = 0; i < alphas.size(); ++i) {
    if (m[i] >= floor) continue;  // nothing to clamp: the parameter is left untouched
    const at::Tensor& a = alphas[i];
    // |a| >= floor with the sign kept; an exact zero becomes +floor (the seed's sign() would keep it at 0, and the
    // inverse would divide by it). Written through a view with a version counter of its own, as the seed writes
    // through .data: a graph that saved alpha earlier in this step (a second forward before one backward) stays
    // valid.
    const at::Tensor magnitude = a.abs().clamp_min(floor);
    a.variable_data().copy_(at::where(a < 0, -magnitude, magnitude));
  }
}

ColumnGrid ColumnGrid::first_columns(int64_t n) const {
  TORCH_CHECK(n >= 0 && n <= columns(), "ColumnGrid::first_columns: ", n, " of ", columns(), " columns");
  ColumnGrid head;
  head.levels.assign(levels.begin(), levels.begin() + n);
  head.alphas.assign(alphas.begin(), alphas.begin() + n);
  return head;
}

std::vector<ColumnRole> column_roles(const ColumnOptions& options, int64_t columns) {
  if (options.memory_mode() == MemoryMode::Off) return std::vector<ColumnRole>(columns, ColumnRole::Kept);
  const int64_t kept = std::clamp<int64_t>(options.keep_columns(), 0, columns);
  const int64_t last = columns - kept - 1;  // the last column the backward recomputes
  const bool reverses = options.memory_mode() == MemoryMode::Full || options.memory_mode() == MemoryMode::Auto;
  const int64_t every = options.store_every();
  std::vector<ColumnRole> roles(columns, ColumnRole::Kept);
  for (int64_t j = 0; j <= last; ++j) {
    const int64_t back = last - j;
    const bool stored = !reverses || back == 0 || (every > 0 && back % every == 0);
    roles[j] = stored ? ColumnRole::Stored : ColumnRole::Reversed;
  }
  return roles;
}

std::vector<bool> matmul_columns(const ColumnOptions& options, int64_t columns) {
  std::vector<bool> keeps(columns, false);
  if (options.recompute_chunks() > 1) return keeps;
  const auto roles = column_roles(options, columns);
  int64_t left = std::max<int64_t>(options.keep_matmuls(), 0);
  for (int64_t j = columns - 1; j >= 0 && left > 0; --j)
    if (roles[j] != ColumnRole::Kept) {
      keeps[j] = true;
      --left;
    }
  return keeps;
}

int64_t first_kept_level(const ColumnOptions& options, int64_t levels) {
  return levels - std::clamp<int64_t>(options.keep_levels(), 0, levels);
}

namespace {

using detail::combine;
using detail::sweep;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

auto plain_cell(const ColumnGrid& grid) {
  return [&grid](int64_t j, int64_t k, const at::Tensor& lower, const at::Tensor& upper, const at::Tensor& previous) {
    return combine(j, k, grid.levels[j][k]->forward(lower, upper), grid.alphas[j][k], previous);
  };
}

std::vector<at::Tensor> run_plain(const ColumnGrid& grid, const at::Tensor& x) {
  return sweep(grid, x, plain_cell(grid));
}

// What backward needs from one forward through the grid, shared by every cell's autograd node (as a capsule): the
// grid, the states backward will read (stored by the forward or rebuilt by the inverse, dropped after their last
// read), each cell's RNG state, buffers and trainable parameters. Tensors in it are detached, so it holds no
// reference back into the graph.
struct GridTape : torch::CustomClassHolder {
  ColumnGrid grid;
  ColumnOptions options;
  std::vector<bool> stored;
  std::vector<bool> keeps_matmuls;                // [column]
  int64_t first_kept_level = 0;                   // levels from here up are plain autograd in every column
  std::vector<std::vector<KeptMatmuls>> matmuls;  // [column][level]: until the cell's backward has run
  at::Tensor x;
  std::vector<std::vector<at::Tensor>> state;    // [column][level]: c_k[j] while backward still needs it
  std::vector<std::vector<int64_t>> version;     // [column][level]: version of a state kept by the forward
  std::vector<std::vector<int>> reads_left;      // [column][level]: backward reads of c_k[j] still to come
  std::vector<std::vector<RngState>> rng;        // [column][level]: generator state before F_k[j]
  std::vector<std::vector<bool>> backward_done;  // [column][level]
  int64_t cells_done = 0;
  std::vector<std::vector<std::vector<at::Tensor>>> buffers;  // [column][level]
  // [column][level]: the trainable parameters, in the order the cell's node takes them as inputs and returns
  // their gradients.
  std::vector<std::vector<std::vector<at::Tensor>>> params;
  std::vector<int> cuda_devices;
  AutocastState autocast;
  RngState last_rng;

  int64_t columns() const { return grid.columns(); }
  int64_t levels() const { return grid.num_levels(); }
  // The cells that run backward through this tape (a kept level's cells are plain autograd).
  int64_t recomputed_cells() const { return columns() * first_kept_level; }

  // The states the backward of cell (j, k) reads: its lower input, its upper input, and in a column after the
  // first its previous state (rebuilt by its inverse) and its own output (which the inverse reads). The one
  // place that knows this: the read counts are set from it and released by it.
  template <typename Visit>
  void for_each_read(int64_t j, int64_t k, Visit visit) const {
    if (k > 0) visit(j, k - 1);
    if (j > 0 && k + 1 < levels()) visit(j - 1, k + 1);
    if (j > 0) {
      visit(j - 1, k);
      visit(j, k);
    }
  }
  void count_reads() {
    reads_left.assign(columns(), std::vector<int>(levels(), 0));
    for (int64_t j = 0; j < columns(); ++j)
      for (int64_t k = 0; k < first_kept_level; ++k)
        for_each_read(j, k, [&](int64_t a, int64_t b) { ++reads_left[a][b]; });
  }
  // After the backward of cell (j, k): each state it read has one reader less, and goes once none is left.
  void release_reads(int64_t j, int64_t k) {
    for_each_read(j, k, [&](int64_t a, int64_t b) {
      if (--reads_left[a][b] > 0) return;
      state[a][b] = at::Tensor();
      version[a][b] = -1;
    });
    matmuls[j][k].clear();
    if (++cells_done < recomputed_cells()) return;
    // The whole grid is done: every counted read happened, and nothing is kept (a one-column grid's top state
    // has no reader at all).
    for (int64_t a = 0; a < columns(); ++a)
      for (int64_t b = 0; b < levels(); ++b)
        TORCH_INTERNAL_ASSERT(reads_left[a][b] == 0, "revkit: column ", a, " level ", b, " has ", reads_left[a][b],
                              " backward reads left after the last cell");
    state.clear();
  }

  // Levels that draw no random numbers leave the generator as they found it: consecutive equal states are
  // kept once, so without dropout the tape holds one state, not one per cell.
  void capture_rng(int64_t j, int64_t k) {
    RngState now = RngState::capture(cuda_devices);
    if (!last_rng.empty() && now == last_rng) now = last_rng;
    rng[j][k] = last_rng = now;
  }

  // c_k[j] for backward: the stored or already rebuilt value, or rebuilt now from column j + 1.
  at::Tensor value(int64_t j, int64_t k) {
    TORCH_CHECK(version[j][k] < 0 || state[j][k]._version() == version[j][k], "revkit: the state of column ", j,
                " level ", k,
                " was modified in place after the forward pass; "
                "reversible backward needs it as it was (clone it before changing it)");
    if (!state[j][k].defined()) {
      // Only when the cell that rebuilds it never ran backward (its output took no part in the loss).
      TORCH_CHECK(j + 1 < columns(), "revkit: the state of column ", j, " level ", k, " is gone");
      at::NoGradGuard no_grad;
      BufferRestoreGuard keep_buffers(buffers[j + 1][k]);
      state[j][k] = invert(j + 1, k, recompute(j + 1, k));
    }
    return state[j][k];
  }

  // F_k[j] on the states it saw in the forward pass, under the same RNG state. The caller keeps the buffers
  // from moving until it is done with the result: batch norm's backward checks the running statistics it saved.
  at::Tensor recompute(int64_t j, int64_t k, const at::Tensor& lower = {}, const at::Tensor& upper = {}) {
    const at::Tensor low = lower.defined() ? lower : (k == 0 ? x : value(j, k - 1));
    at::Tensor up = upper;
    if (!up.defined() && j > 0 && k + 1 < levels()) up = value(j - 1, k + 1);
    // After the inputs: rebuilding them on demand recomputes other cells, which restore their own RNG states.
    if (options.preserve_rng_state()) rng[j][k].restore();
    if (!keeps_matmuls[j]) return grid.levels[j][k]->forward(low, up);
    ReplayMatmulsGuard replay(matmuls[j][k]);
    at::Tensor f = grid.levels[j][k]->forward(low, up);
    replay.finish(j, k);
    return f;
  }

  // c_k[j-1] from c_k[j] and F_k[j]'s output.
  at::Tensor invert(int64_t j, int64_t k, const at::Tensor& f) {
    at::NoGradGuard no_grad;
    return (value(j, k) - f.detach()) / grid.alphas[j][k];
  }
};

// One cell of the grid as an autograd node: inputs (lower, upper, c_k[j-1], alpha_k[j], F's parameters), output
// c_k[j]. The autograd engine runs cells in reverse order, which is also the order in which the inverse can
// rebuild the states each needs: cell (j+1, k) rebuilds c_k[j] before any cell that reads it runs.
struct CellFunction : public torch::autograd::Function<CellFunction> {
  // Where each input's gradient goes in backward's result: tape, j, k (none), then these, then the parameters.
  enum Slot : size_t { kLower = 3, kUpper = 4, kPrevious = 5, kAlpha = 6, kFirstParam = 7 };

  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<GridTape> tape, int64_t j, int64_t k,
                               const at::Tensor& lower, const c10::optional<at::Tensor>& upper,
                               const c10::optional<at::Tensor>& previous, const c10::optional<at::Tensor>& alpha,
                               at::TensorList params) {
    AutocastCacheOffGuard no_cache;  // casts made here have no grad: keep them out of autocast's cache
    if (tape->options.preserve_rng_state()) tape->capture_rng(j, k);
    at::Tensor out;
    {
      std::optional<RecordMatmulsGuard> record;
      if (tape->keeps_matmuls[j]) record.emplace(tape->matmuls[j][k]);
      out = tape->grid.levels[j][k]->forward(lower, upper.value_or(at::Tensor()));
    }
    out = combine(j, k, out, alpha.value_or(at::Tensor()), previous.value_or(at::Tensor()));
    if (tape->stored[j]) {
      tape->state[j][k] = out.detach();  // shares out's version counter: in-place changes are caught
      tape->version[j][k] = out._version();
    }
    ctx->saved_data["tape"] = c10::IValue::make_capsule(tape);
    ctx->saved_data["j"] = j;
    ctx->saved_data["k"] = k;
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto tape = c10::static_intrusive_pointer_cast<GridTape>(ctx->saved_data["tape"].toCapsule());
    const int64_t j = ctx->saved_data["j"].toInt(), k = ctx->saved_data["k"].toInt();
    // The autograd engine runs backward with grad on only for create_graph: the gradients of a recompute are
    // not themselves differentiable here.
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "revkit: backward with create_graph=true (double backward) through a reversible column grid is not "
                "supported; use memory mode off for higher-order gradients");
    TORCH_CHECK(!tape->backward_done[j][k],
                "revkit: backward through a reversible column stack a second time; it recomputes from its outputs "
                "and supports one backward per forward (run the forward again)");
    tape->backward_done[j][k] = true;
    const at::Tensor& g = grad_outputs[0];

    std::unique_ptr<RngForkGuard> rng_fork;
    if (tape->options.preserve_rng_state()) rng_fork = std::make_unique<RngForkGuard>(tape->cuda_devices);
    // The forward's autocast state, with the cache off: a recompute must cast the weights afresh, with grad.
    AutocastStateGuard autocast(tape->autocast.without_cache());
    variable_list result(kFirstParam);
    at::Tensor f = gradients(*tape, j, k, g, ctx->needs_input_grad(0), result);
    if (j > 0) inverse(*tape, j, k, std::move(f), g, result);
    tape->release_reads(j, k);
    return result;
  }

  // Recomputes F_k[j] with autograd on, from detached copies of its inputs, and puts the gradients of its lower
  // and upper inputs and of its parameters into `result`. Returns F's output for the inverse.
  static at::Tensor gradients(GridTape& tape, int64_t j, int64_t k, const at::Tensor& g, bool lower_needs_grad,
                              variable_list& result) {
    at::AutoGradMode grad_on(true);
    const bool has_upper = j > 0 && k + 1 < tape.levels();
    at::Tensor lower = (k == 0 ? tape.x : tape.value(j, k - 1)).detach().requires_grad_(lower_needs_grad);
    at::Tensor upper = has_upper ? tape.value(j - 1, k + 1).detach().requires_grad_(true) : at::Tensor();
    BufferRestoreGuard keep_buffers(tape.buffers[j][k]);  // until F's backward has run: batch norm checks them
    at::Tensor f;
    {
      RECORD_FUNCTION("revkit::recompute", std::vector<c10::IValue>());
      RecomputeChunksGuard chunks(tape.options.recompute_chunks());
      f = tape.recompute(j, k, lower, upper);
    }
    variable_list wrt;
    if (lower.requires_grad()) wrt.push_back(lower);
    if (upper.defined()) wrt.push_back(upper);
    const size_t first_param = wrt.size();
    wrt.insert(wrt.end(), tape.params[j][k].begin(), tape.params[j][k].end());
    if (wrt.empty()) return f;
    RECORD_FUNCTION("revkit::cell_backward", std::vector<c10::IValue>());
    variable_list d = torch::autograd::grad({f}, wrt, {g}, /*retain_graph=*/false, /*create_graph=*/false,
                                            /*allow_unused=*/true);
    size_t i = 0;
    if (lower.requires_grad()) result[kLower] = d[i++];
    if (upper.defined()) result[kUpper] = d[i++];
    for (size_t n = first_param; n < d.size(); ++n) result.push_back(d[n]);
    return f;
  }

  // c_k[j-1] rebuilt from c_k[j] and F's output (or checked, when the forward kept it), and the gradients of the
  // previous state and of alpha: d c_k[j] / d c_k[j-1] = alpha, d c_k[j] / d alpha = c_k[j-1].
  static void inverse(GridTape& tape, int64_t j, int64_t k, at::Tensor f, const at::Tensor& g, variable_list& result) {
    at::NoGradGuard no_grad;
    const at::Tensor& alpha = tape.grid.alphas[j][k];
    if (tape.state[j - 1][k].defined())
      tape.value(j - 1, k);  // checks a kept state was not changed in place
    else
      tape.state[j - 1][k] = tape.invert(j, k, f);
    f = at::Tensor();
    result[kPrevious] = g * alpha;
    result[kAlpha] = (g * tape.state[j - 1][k]).sum_to_size(alpha.sizes());
  }
};

c10::intrusive_ptr<GridTape> make_tape(const ColumnGrid& grid, const ColumnOptions& options, const at::Tensor& x) {
  auto tape = c10::make_intrusive<GridTape>();
  tape->grid = grid;
  tape->options = options;
  const int64_t N = grid.columns(), L = grid.num_levels();
  for (ColumnRole role : column_roles(options, N)) tape->stored.push_back(role == ColumnRole::Stored);
  tape->keeps_matmuls = matmul_columns(options, N);
  tape->first_kept_level = reversible::first_kept_level(options, L);
  tape->matmuls.assign(N, std::vector<KeptMatmuls>(L));
  tape->x = x.detach();
  tape->state.assign(N, std::vector<at::Tensor>(L));
  tape->version.assign(N, std::vector<int64_t>(L, -1));
  tape->count_reads();
  if (options.preserve_rng_state()) tape->rng.assign(N, std::vector<RngState>(L));
  tape->backward_done.assign(N, std::vector<bool>(L, false));
  tape->buffers.assign(N, std::vector<std::vector<at::Tensor>>(L));
  tape->params.assign(N, std::vector<std::vector<at::Tensor>>(L));
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < L; ++k) {
      tape->buffers[j][k] = grid.levels[j][k]->buffers();
      for (const auto& p : grid.levels[j][k]->parameters())
        if (p.requires_grad()) tape->params[j][k].push_back(p);
    }
  tape->cuda_devices = cuda_devices_of(x);
  tape->autocast = AutocastState::current();
  return tape;
}

std::vector<at::Tensor> run_reversible(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options) {
  auto tape = make_tape(grid, options, x);
  // Absent inputs go in as empty optionals: autograd nodes take no undefined tensors.
  auto maybe = [](const at::Tensor& t) { return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt; };
  return sweep(grid, x,
               [&](int64_t j, int64_t k, const at::Tensor& lower, const at::Tensor& upper, const at::Tensor& previous) {
                 if (k < tape->first_kept_level)
                   return CellFunction::apply(tape, j, k, lower, maybe(upper), maybe(previous),
                                              maybe(j > 0 ? grid.alphas[j][k] : at::Tensor()),
                                              at::TensorList(tape->params[j][k]))[0];
                 // A kept level: plain autograd between the grid's nodes. The lowest one's state is the upper input
                 // of the next column's recomputed cell below it, and no cell rebuilds it by the inverse: stored.
                 // The others are read by kept cells only, whose graphs hold them as long as they are needed.
                 at::Tensor out = combine(j, k, grid.levels[j][k]->forward(lower, upper), grid.alphas[j][k], previous);
                 if (k == tape->first_kept_level && j + 1 < grid.columns()) {
                   tape->state[j][k] = out.detach();
                   tape->version[j][k] = out._version();
                 }
                 return out;
               });
}

}  // namespace

std::vector<at::Tensor> run_columns(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options) {
  detail::check_grid(grid);
  // A grid inside another grid's level keeps none of its products for the outer cell: the outer forward (without
  // grad) would run it plain and its recompute reversibly, with different calls.
  NoMatmulScopeGuard own_scope;
  clamp_alphas(grid, options.alpha_floor());
  if (options.memory_mode() == MemoryMode::Off || !at::GradMode::is_enabled()) return run_plain(grid, x);
  // The kept columns are plain autograd after the reversible ones: the graph they record saves the states of the
  // last reversible column they read (which that column stores in any case), and its gradients flow into that
  // column's cells as into any other node.
  const int64_t reversed = grid.columns() - std::clamp<int64_t>(options.keep_columns(), 0, grid.columns());
  if (reversed == 0 || first_kept_level(options, grid.num_levels()) == 0) return run_plain(grid, x);
  if (reversed == grid.columns()) return run_reversible(grid, x, options);
  ColumnOptions recomputed = options;  // the first columns on their own: the last of them is stored
  recomputed.keep_columns(0);
  std::vector<at::Tensor> state = run_reversible(grid.first_columns(reversed), x, recomputed);
  return sweep(grid, x, plain_cell(grid), reversed, std::move(state));
}

}  // namespace revkit::reversible
