#include "reversible/testing.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/buffer_snapshot.h"
#include "core/rng_state.h"
#include "reversible/reversible_module.h"

namespace revkit::reversible {

double relative_difference(const at::Tensor& actual, const at::Tensor& reference) {
  if (!actual.defined() && !reference.defined()) return 0.0;
  const at::Tensor& shape_of = reference.defined() ? reference : actual;
  auto as_double = [&](const at::Tensor& t) {
    return t.defined() ? t.detach().to(at::kCPU, at::kDouble) : at::zeros(shape_of.sizes(), at::kDouble);
  };
  at::Tensor a = as_double(actual), b = as_double(reference);
  TORCH_CHECK(a.sizes() == b.sizes(), "relative_difference: shapes differ, ", a.sizes(), " against ", b.sizes());
  const double diff = (a - b).norm().item<double>();
  const double ref = b.norm().item<double>();
  // A NaN or infinity on either side is no agreement, and must rank worst: a NaN would compare false against every
  // tolerance and every other difference, and so hide.
  if (!std::isfinite(diff) || !std::isfinite(ref)) return std::numeric_limits<double>::infinity();
  return ref > 0 ? diff / ref : diff;
}

double default_tolerance(MemoryMode mode, c10::ScalarType dtype) {
  const bool full = mode == MemoryMode::Full || mode == MemoryMode::Auto;
  if (dtype == at::kDouble) return full ? 1e-8 : 1e-10;
  if (dtype == at::kFloat) return full ? 2e-4 : 1e-5;
  return 1e-2;
}

void EquivalenceReport::add(const std::string& category, const std::string& name, const at::Tensor& actual,
                            const at::Tensor& reference) {
  differences.push_back({category, name, relative_difference(actual, reference)});
}

Difference EquivalenceReport::worst(const std::string& category) const {
  Difference out{category, "", 0.0};
  for (const auto& d : differences)
    if (d.category == category && (out.name.empty() || d.relative > out.relative)) out = d;
  return out;
}

double EquivalenceReport::worst_overall() const {
  double w = 0.0;
  for (const auto& d : differences) w = std::max(w, d.relative);
  return w;
}

std::vector<std::string> EquivalenceReport::categories() const {
  std::vector<std::string> out;
  for (const auto& d : differences)
    if (std::find(out.begin(), out.end(), d.category) == out.end()) out.push_back(d.category);
  return out;
}

bool EquivalenceReport::within(double tolerance) const { return rng_stream_equal && worst_overall() <= tolerance; }

namespace {

struct RunResult {
  std::vector<at::Tensor> outputs;
  at::Tensor input_grad;
  std::map<std::string, at::Tensor> param_grads, buffers;
  RngState rng_after;  // the CPU generator and those of the CUDA devices involved
};

RunResult run_once(torch::nn::Module& model, const ForwardFn& forward, const at::Tensor& input,
                   std::vector<at::Tensor>& probes, uint64_t seed, const std::vector<int>& cuda_devices) {
  for (auto& p : model.parameters()) p.mutable_grad() = at::Tensor();
  at::manual_seed(seed);
  at::Tensor x = input.detach().clone().requires_grad_(input.is_floating_point());
  RunResult r;
  r.outputs = forward(x);
  if (probes.empty()) {
    // Probes come from their own generator, so they are the same whatever the model draws.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
    for (const auto& o : r.outputs)
      probes.push_back(at::randn(o.sizes(), gen, at::TensorOptions().dtype(at::kDouble)).to(o.options()));
  }
  at::Tensor loss;
  for (size_t k = 0; k < r.outputs.size(); ++k) {
    at::Tensor term = (r.outputs[k] * probes[k]).sum();
    loss = loss.defined() ? loss + term : term;
  }
  loss.backward();
  for (auto& o : r.outputs) o = o.detach();
  if (x.requires_grad()) r.input_grad = x.grad();
  for (const auto& item : model.named_parameters()) r.param_grads[item.key()] = item.value().grad();
  for (const auto& item : model.named_buffers()) r.buffers[item.key()] = item.value().detach().clone();
  r.rng_after = RngState::capture(cuda_devices);
  return r;
}

}  // namespace

EquivalenceReport compare_memory_modes(torch::nn::Module& model, const ForwardFn& forward, const at::Tensor& input,
                                       const ModeComparison& comparison) {
  auto parts = reversible_modules(model);
  TORCH_CHECK(!parts.empty(),
              "compare_memory_modes: the model has no reversible part (no ReversibleModule below it), so every memory "
              "mode would run plain autograd and the comparison could not fail");
  std::vector<at::Tensor> involved = model.parameters();
  involved.push_back(input);
  const std::vector<int> cuda_devices = cuda_devices_of(involved);
  std::vector<ColumnOptions> original;
  for (auto* p : parts) original.push_back(p->column_options());
  const BufferSnapshot buffers(model.buffers());
  RngForkGuard rng_fork(cuda_devices);

  std::vector<at::Tensor> probes;
  set_memory_mode(model, comparison.reference);
  RunResult ref = run_once(model, forward, input, probes, comparison.seed, cuda_devices);
  buffers.restore();
  set_memory_mode(model, comparison.mode, comparison.store_every, comparison.keep_columns, comparison.keep_matmuls,
                  comparison.keep_levels);
  for (auto* p : parts)
    p->column_options().recompute_chunks(comparison.recompute_chunks).memory_budget_mb(comparison.memory_budget_mb);
  RunResult got = run_once(model, forward, input, probes, comparison.seed, cuda_devices);
  for (size_t i = 0; i < parts.size(); ++i) parts[i]->column_options() = original[i];

  EquivalenceReport report;
  TORCH_CHECK(got.outputs.size() == ref.outputs.size(), "compare_memory_modes: the two runs returned ",
              got.outputs.size(), " and ", ref.outputs.size(), " outputs");
  for (size_t k = 0; k < ref.outputs.size(); ++k)
    report.add("outputs", "output " + std::to_string(k), got.outputs[k], ref.outputs[k]);
  if (ref.input_grad.defined() || got.input_grad.defined())
    report.add("input gradient", "input", got.input_grad, ref.input_grad);
  for (const auto& [name, g] : ref.param_grads) report.add("parameter gradients", name, got.param_grads[name], g);
  for (const auto& [name, b] : ref.buffers) report.add("buffers", name, got.buffers[name], b);
  report.rng_stream_equal = ref.rng_after == got.rng_after;
  return report;
}

}  // namespace revkit::reversible
