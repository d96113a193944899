#include "reversible/reversible_function.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/custom_class.h>

#include <unordered_map>

#include "core/autocast_state.h"
#include "core/error.h"
#include "core/rng_state.h"
#include "reversible/chunks.h"

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
  for (const auto& column : grid.alphas)
    for (const auto& a : column) {
      if (!a.defined()) continue;
      // |a| >= floor with the sign kept; an exact zero becomes +floor (the seed's sign() would keep it at 0,
      // and the inverse would divide by it).
      auto magnitude = a.abs().clamp_min(floor);
      a.copy_(at::where(a < 0, -magnitude, magnitude));
    }
}

std::vector<bool> stored_columns(const ColumnOptions& options, int64_t columns) {
  std::vector<bool> stored(columns, true);
  if (options.memory_mode() != MemoryMode::Full && options.memory_mode() != MemoryMode::Auto) return stored;
  const int64_t every = options.store_every();
  for (int64_t j = 0; j < columns; ++j) {
    const int64_t back = columns - 1 - j;
    stored[j] = back == 0 || (every > 0 && back % every == 0);
  }
  return stored;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor combine(const at::Tensor& f, const at::Tensor& alpha, const at::Tensor& previous) {
  return previous.defined() ? alpha * previous + f : f;
}

// The forward sweep over the grid, column by column, level by level; `cell(j, k, lower, upper, previous)` gives
// c_k[j] (upper and previous are undefined where the recurrence has none).
template <typename Cell>
std::vector<at::Tensor> sweep(const ColumnGrid& grid, const at::Tensor& x, Cell cell) {
  const int64_t L = grid.num_levels();
  std::vector<at::Tensor> state;
  for (int64_t j = 0; j < grid.columns(); ++j) {
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

std::vector<at::Tensor> run_plain(const ColumnGrid& grid, const at::Tensor& x) {
  return sweep(grid, x, [&](int64_t j, int64_t k, const at::Tensor& lower, const at::Tensor& upper, const at::Tensor& previous) {
    return combine(grid.levels[j][k]->forward(lower, upper), grid.alphas[j][k], previous);
  });
}

// Restores a level's buffers (BatchNorm running statistics, ...) after a recompute, so they move once per step.
class BufferGuard {
 public:
  explicit BufferGuard(const std::vector<at::Tensor>& buffers) : buffers_(buffers) {
    for (const auto& b : buffers_) saved_.push_back(b.clone());
  }
  ~BufferGuard() {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(saved_[i]);
  }

 private:
  const std::vector<at::Tensor>& buffers_;
  std::vector<at::Tensor> saved_;
};

// What the cells of one forward share: the grid, the states that backward will read (stored by the forward or
// rebuilt by the inverse), and each cell's RNG state. Held by every cell's autograd node as a capsule; tensors
// in it are detached, so it holds no reference back into the graph.
struct Plan : torch::CustomClassHolder {
  ColumnGrid grid;
  ColumnOptions options;
  std::vector<bool> stored;
  at::Tensor x;
  std::vector<std::vector<at::Tensor>> state;     // [column][level]: c_k[j] while backward still needs it
  std::vector<std::vector<int64_t>> version;      // [column][level]: version of a state kept by the forward
  std::vector<std::vector<int>> reads_left;       // [column][level]: backward reads of c_k[j] still to come
  std::vector<std::vector<RngState>> rng;         // [column][level]: generator state before F_k[j]
  std::vector<std::vector<bool>> backward_done;   // [column][level]
  std::vector<std::vector<std::vector<at::Tensor>>> buffers;  // [column][level]
  // [column][level]: the trainable parameters, in the order the cell's node takes them as inputs and
  // returns their gradients.
  std::vector<std::vector<std::vector<at::Tensor>>> params;
  std::vector<int> cuda_devices;
  AutocastState autocast;

  int64_t columns() const { return grid.columns(); }

  // Levels that draw no random numbers leave the generator as they found it: consecutive equal states are
  // kept once, so without dropout the plan holds one state, not one per cell.
  void capture_rng(int64_t j, int64_t k) {
    RngState now = RngState::capture(cuda_devices);
    if (!last_rng.empty() && now == last_rng) now = last_rng;
    rng[j][k] = last_rng = now;
  }
  RngState last_rng;
  int64_t levels() const { return grid.num_levels(); }

  // c_k[j] for backward: the stored or already rebuilt value, or rebuilt now from column j + 1.
  at::Tensor value(int64_t j, int64_t k) {
    TORCH_CHECK(version[j][k] < 0 || state[j][k]._version() == version[j][k],
                "revkit: the state of column ", j, " level ", k, " was modified in place after the forward pass; "
                "reversible backward needs it as it was (clone it before changing it)");
    if (!state[j][k].defined()) {
      // Only when the cell that rebuilds it never ran backward (its output took no part in the loss).
      TORCH_CHECK(j + 1 < columns(), "revkit: the state of column ", j, " level ", k, " is gone");
      at::NoGradGuard no_grad;
      BufferGuard keep_buffers(buffers[j + 1][k]);
      state[j][k] = invert(j + 1, k, recompute(j + 1, k));
    }
    return state[j][k];
  }

  // The designated reader of c_k[j] has used it: drop it after the last such read.
  void done_reading(int64_t j, int64_t k) {
    if (--reads_left[j][k] <= 0) {
      state[j][k] = at::Tensor();
      version[j][k] = -1;
    }
  }

  // F_k[j] on the states it saw in the forward pass, under the same RNG state. The caller holds a BufferGuard
  // until it is done with the result: batch norm's backward checks the running statistics it saved.
  at::Tensor recompute(int64_t j, int64_t k, const at::Tensor& lower = {}, const at::Tensor& upper = {}) {
    if (options.preserve_rng_state()) rng[j][k].restore();
    const at::Tensor low = lower.defined() ? lower : (k == 0 ? x : value(j, k - 1));
    at::Tensor up = upper;
    if (!up.defined() && j > 0 && k + 1 < levels()) up = value(j - 1, k + 1);
    return grid.levels[j][k]->forward(low, up);
  }

  // c_k[j-1] from c_k[j] and F_k[j]'s output.
  at::Tensor invert(int64_t j, int64_t k, const at::Tensor& f) {
    at::NoGradGuard no_grad;
    return (value(j, k) - f.detach()) / grid.alphas[j][k];
  }
};

// One cell of the grid as an autograd node: inputs (lower, upper, c_k[j-1], alpha_k[j], F's parameters), output
// c_k[j]. The engine runs cells in reverse order, which is also the order in which the inverse can rebuild the
// states each needs: cell (j+1, k) rebuilds c_k[j] before any cell that reads it runs.
struct CellFunction : public torch::autograd::Function<CellFunction> {
  static variable_list forward(AutogradContext* ctx, c10::intrusive_ptr<Plan> plan, int64_t j, int64_t k,
                               const at::Tensor& lower, const c10::optional<at::Tensor>& upper,
                               const c10::optional<at::Tensor>& previous, const c10::optional<at::Tensor>& alpha,
                               at::TensorList params) {
    if (plan->options.preserve_rng_state()) plan->capture_rng(j, k);
    at::Tensor out = plan->grid.levels[j][k]->forward(lower, upper.value_or(at::Tensor()));
    if (previous) out = combine(out, *alpha, *previous);
    if (plan->stored[j]) {
      plan->state[j][k] = out.detach();  // shares out's version counter: in-place changes are caught
      plan->version[j][k] = out._version();
    }
    ctx->saved_data["plan"] = c10::IValue::make_capsule(plan);
    ctx->saved_data["j"] = j;
    ctx->saved_data["k"] = k;
    return {out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto plan = c10::static_intrusive_pointer_cast<Plan>(ctx->saved_data["plan"].toCapsule());
    const int64_t j = ctx->saved_data["j"].toInt(), k = ctx->saved_data["k"].toInt();
    const int64_t L = plan->levels();
    TORCH_CHECK(!plan->backward_done[j][k],
                "revkit: backward through a reversible column stack a second time; it recomputes from its outputs "
                "and supports one backward per forward (run the forward again)");
    plan->backward_done[j][k] = true;
    const at::Tensor& g = grad_outputs[0];

    std::unique_ptr<RngForkGuard> rng_fork;
    if (plan->options.preserve_rng_state()) rng_fork = std::make_unique<RngForkGuard>(plan->cuda_devices);
    AutocastStateGuard autocast(plan->autocast);
    at::AutoGradMode grad_on(true);

    const bool has_upper = j > 0 && k + 1 < L;
    at::Tensor lower = (k == 0 ? plan->x : plan->value(j, k - 1)).detach().requires_grad_(ctx->needs_input_grad(0));
    at::Tensor upper = has_upper ? plan->value(j - 1, k + 1).detach().requires_grad_(true) : at::Tensor();
    auto keep_buffers = std::make_unique<BufferGuard>(plan->buffers[j][k]);
    at::Tensor f;
    {
      RecomputeChunksGuard chunks(plan->options.recompute_chunks());
      f = plan->recompute(j, k, lower, upper);
    }

    variable_list wrt;
    if (lower.requires_grad()) wrt.push_back(lower);
    if (upper.defined()) wrt.push_back(upper);
    const size_t first_param = wrt.size();
    wrt.insert(wrt.end(), plan->params[j][k].begin(), plan->params[j][k].end());
    variable_list d = wrt.empty() ? variable_list{}
                                  : torch::autograd::grad({f}, wrt, {g}, /*retain_graph=*/false,
                                                          /*create_graph=*/false, /*allow_unused=*/true);
    keep_buffers.reset();

    // Result layout: plan, j, k (no gradients), lower, upper, previous, alpha, then every parameter.
    variable_list result(7);
    size_t i = 0;
    if (lower.requires_grad()) result[3] = d[i++];
    if (upper.defined()) result[4] = d[i++];
    for (size_t n = first_param; n < d.size(); ++n) result.push_back(d[n]);

    if (j > 0) {
      at::NoGradGuard no_grad;
      const at::Tensor& alpha = plan->grid.alphas[j][k];
      if (plan->state[j - 1][k].defined())
        plan->value(j - 1, k);  // checks a kept state was not changed in place
      else
        plan->state[j - 1][k] = plan->invert(j, k, f);
      f = at::Tensor();
      result[5] = g * alpha;
      result[6] = (g * plan->state[j - 1][k]).sum_to_size(alpha.sizes());
      plan->done_reading(j - 1, k);  // as this cell's previous state
      plan->done_reading(j, k);      // its own output, read by the inverse
    }
    if (k > 0) plan->done_reading(j, k - 1);
    if (has_upper) plan->done_reading(j - 1, k + 1);
    return result;
  }
};

c10::intrusive_ptr<Plan> make_plan(const ColumnGrid& grid, const ColumnOptions& options, const at::Tensor& x) {
  auto plan = c10::make_intrusive<Plan>();
  plan->grid = grid;
  plan->options = options;
  const int64_t N = grid.columns(), L = grid.num_levels();
  plan->stored = stored_columns(options, N);
  plan->x = x.detach();
  plan->state.assign(N, std::vector<at::Tensor>(L));
  plan->version.assign(N, std::vector<int64_t>(L, -1));
  plan->reads_left.assign(N, std::vector<int>(L, 0));
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < L; ++k) {
      int& reads = plan->reads_left[j][k];
      if (j > 0) ++reads;                       // its own cell's inverse
      if (k + 1 < L) ++reads;                   // lower input of (j, k+1)
      if (j + 1 < N) ++reads;                   // previous state of (j+1, k)
      if (j + 1 < N && k >= 1) ++reads;         // upper input of (j+1, k-1)
    }
  if (options.preserve_rng_state()) plan->rng.assign(N, std::vector<RngState>(L));
  plan->backward_done.assign(N, std::vector<bool>(L, false));
  plan->buffers.assign(N, std::vector<std::vector<at::Tensor>>(L));
  plan->params.assign(N, std::vector<std::vector<at::Tensor>>(L));
  for (int64_t j = 0; j < N; ++j)
    for (int64_t k = 0; k < L; ++k) {
      plan->buffers[j][k] = grid.levels[j][k]->buffers();
      for (const auto& p : grid.levels[j][k]->parameters())
        if (p.requires_grad()) plan->params[j][k].push_back(p);
    }
  plan->cuda_devices = cuda_devices_of(x);
  plan->autocast = AutocastState::current();
  return plan;
}

std::vector<at::Tensor> run_reversible(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options) {
  auto plan = make_plan(grid, options, x);
  // Absent inputs go in as empty optionals: autograd nodes take no undefined tensors.
  auto maybe = [](const at::Tensor& t) { return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt; };
  return sweep(grid, x, [&](int64_t j, int64_t k, const at::Tensor& lower, const at::Tensor& upper, const at::Tensor& previous) {
    return CellFunction::apply(plan, j, k, lower, maybe(upper), maybe(previous),
                               maybe(j > 0 ? grid.alphas[j][k] : at::Tensor()), at::TensorList(plan->params[j][k]))[0];
  });
}

void check_grid(const ColumnGrid& grid) {
  TORCH_CHECK(grid.columns() > 0 && grid.num_levels() > 0, "revkit: a column grid needs at least one column and one level");
  TORCH_CHECK(grid.alphas.size() == grid.levels.size(), "revkit: the column grid has ", grid.levels.size(),
              " columns of levels but ", grid.alphas.size(), " columns of alphas");
  for (int64_t j = 0; j < grid.columns(); ++j) {
    TORCH_CHECK(static_cast<int64_t>(grid.levels[j].size()) == grid.num_levels() &&
                    grid.alphas[j].size() == grid.levels[j].size(),
                "revkit: column ", j, " of the grid does not have ", grid.num_levels(), " levels and alphas");
    for (int64_t k = 0; k < grid.num_levels(); ++k) {
      TORCH_CHECK(grid.levels[j][k], "revkit: level ", k, " of column ", j, " is null");
      TORCH_CHECK(j == 0 || grid.alphas[j][k].defined(), "revkit: alpha ", k, " of column ", j, " is undefined");
    }
  }
}

}  // namespace

std::vector<at::Tensor> run_columns(const ColumnGrid& grid, const at::Tensor& x, const ColumnOptions& options) {
  check_grid(grid);
  clamp_alphas(grid, options.alpha_floor());
  if (options.memory_mode() == MemoryMode::Off || !at::GradMode::is_enabled()) return run_plain(grid, x);
  return run_reversible(grid, x, options);
}

}  // namespace revkit::reversible
