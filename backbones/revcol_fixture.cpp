#include "backbones/revcol_fixture.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "core/weights.h"

namespace revkit {
namespace {

const std::string& meta(const Safetensors& file, const std::string& path, const std::string& key) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end()) throw InputError(path, "metadata has no '" + key + "' (not a RevCol fixture?)");
  return it->second;
}

std::vector<int64_t> int_list(const std::string& text, const std::string& path, const std::string& key) {
  try {
    auto v = nlohmann::json::parse(text).get<std::vector<int64_t>>();
    if (v.size() != 4) throw InputError(path, "metadata '" + key + "' needs four entries, got " + text);
    return v;
  } catch (const nlohmann::json::exception&) {
    throw InputError(path, "metadata '" + key + "' is not a list of integers: " + text);
  }
}

int64_t integer(const std::string& text, const std::string& path, const std::string& key) {
  try {
    size_t used = 0;
    const int64_t v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw InputError(path, "metadata '" + key + "' is not an integer: " + text);
}

at::Tensor take(const Safetensors& file, const std::string& path, const std::string& name) {
  auto it = file.tensors.find(name);
  if (it == file.tensors.end()) throw InputError(path, "fixture has no tensor '" + name + "'");
  return it->second;
}

}  // namespace

RevColFixture load_revcol_fixture(const std::string& path) {
  Safetensors file = read_safetensors(path);
  RevColFixture f;
  f.path = path;
  f.options = RevColOptions(int_list(meta(file, path, "channels"), path, "channels"),
                            int_list(meta(file, path, "layers"), path, "layers"),
                            integer(meta(file, path, "num_subnet"), path, "num_subnet"))
                  .kernel_size(integer(meta(file, path, "kernel_size"), path, "kernel_size"))
                  .drop_path(0.0);
  const std::string& dtype = meta(file, path, "dtype");
  if (dtype == "float64")
    f.dtype = at::kDouble;
  else if (dtype == "float32")
    f.dtype = at::kFloat;
  else
    throw InputError(path, "metadata 'dtype' must be float32 or float64, got " + dtype);
  f.input = take(file, path, "input");
  f.input_grad = take(file, path, "grad/input");
  for (int k = 0; k < 4; ++k) {
    f.probes.push_back(take(file, path, "probe/" + std::to_string(k)));
    f.outputs.push_back(take(file, path, "output/" + std::to_string(k)));
  }
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind("param/", 0) == 0) f.params[name.substr(6)] = t;
    if (name.rfind("grad/", 0) == 0 && name != "grad/input") f.grads[name.substr(5)] = t;
  }
  if (f.params.empty()) throw InputError(path, "fixture has no 'param/...' tensors");
  return f;
}

reversible::EquivalenceReport check_revcol_fixture(const RevColFixture& fixture, reversible::MemoryMode mode) {
  auto options = fixture.options;
  RevCol model(options.column_options(reversible::ColumnOptions(mode)));
  model->to(fixture.dtype);
  load_named_tensors(*model, fixture.params, fixture.path);
  model->train();

  at::Tensor x = fixture.input.clone().requires_grad_(true);
  std::vector<at::Tensor> outputs = model->forward(x);
  at::Tensor loss = at::zeros({}, x.options());
  for (size_t k = 0; k < outputs.size(); ++k) loss = loss + (outputs[k] * fixture.probes[k]).sum();
  loss.backward();

  reversible::EquivalenceReport report;
  for (size_t k = 0; k < outputs.size(); ++k)
    report.add("outputs", "output/" + std::to_string(k), outputs[k], fixture.outputs[k]);
  report.add("input gradient", "grad/input", x.grad(), fixture.input_grad);
  for (const auto& item : model->named_parameters()) {
    auto it = fixture.grads.find(item.key());
    if (it == fixture.grads.end()) throw InputError(fixture.path, "fixture has no tensor 'grad/" + item.key() + "'");
    report.add("parameter gradients", "grad/" + item.key(), item.value().grad(), it->second);
  }
  return report;
}

}  // namespace revkit
