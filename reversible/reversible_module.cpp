#include "reversible/reversible_module.h"

#include <ATen/ATen.h>

#include "reversible/drift.h"

namespace revkit::reversible {

std::vector<ReversibleModule*> reversible_modules(torch::nn::Module& root) {
  std::vector<ReversibleModule*> found;
  if (auto* self = dynamic_cast<ReversibleModule*>(&root)) found.push_back(self);
  for (const auto& m : root.modules(/*include_self=*/false))
    if (auto* r = dynamic_cast<ReversibleModule*>(m.get())) found.push_back(r);
  return found;
}

int set_memory_mode(torch::nn::Module& root, MemoryMode mode, int64_t store_every) {
  auto found = reversible_modules(root);
  for (auto* r : found) r->column_options().memory_mode(mode).store_every(store_every);
  return static_cast<int>(found.size());
}

std::vector<double> measure_drift(ReversibleModule& module, const at::Tensor& part_input) {
  at::NoGradGuard no_grad;
  return measure_drift(module.column_grid(), module.column_input(part_input), module.column_options());
}

std::vector<std::vector<double>> measure_drift(torch::nn::Module& model, const std::function<void()>& forward) {
  auto parts = reversible_modules(model);
  for (auto* p : parts) p->record_input_ = true;
  {
    at::NoGradGuard no_grad;
    forward();
  }
  std::vector<std::vector<double>> drift;
  for (auto* p : parts) {
    p->record_input_ = false;
    TORCH_CHECK(p->recorded_input_.defined(), "measure_drift: a reversible part did not run in the forward pass");
    drift.push_back(measure_drift(p->column_grid(), p->recorded_input_, p->column_options()));
    p->recorded_input_ = at::Tensor();
  }
  return drift;
}

}  // namespace revkit::reversible
