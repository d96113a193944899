#include "core/weights.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>
#include <sstream>

#include "core/error.h"

namespace revkit {
namespace {
std::string shape_text(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}
}  // namespace

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

std::string WeightsMatch::summary() const {
  std::string text =
      fmt::format("{} tensors matched, {} missing, {} unexpected", matched.size(), missing.size(), unexpected.size());
  if (!mismatched.empty()) text += fmt::format(", {} of another shape", mismatched.size());
  if (!derived.empty()) text += fmt::format(" ({} derived by the model: {})", derived.size(), fmt::join(derived, ", "));
  return text;
}

WeightsMatch match_named_tensors(const torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                                 const std::string& prefix, const std::set<std::string>& derived) {
  WeightsMatch m;
  std::set<std::string> used;
  auto match = [&](const std::string& name, const at::Tensor& target) {
    const auto it = tensors.find(prefix + name);
    if (it == tensors.end()) {
      (derived.count(name) ? m.derived : m.missing).push_back(name);
      return;
    }
    used.insert(it->first);
    if (it->second.sizes() == target.sizes())
      m.matched.push_back(name);
    else
      m.mismatched.push_back(fmt::format("'{}' has shape {}, the model expects {}", it->first,
                                         shape_text(it->second.sizes()), shape_text(target.sizes())));
  };
  for (const auto& p : module.named_parameters()) match(p.key(), p.value());
  for (const auto& b : module.named_buffers()) match(b.key(), b.value());
  for (const auto& [name, t] : tensors)
    if (name.compare(0, prefix.size(), prefix) == 0 && !used.count(name)) m.unexpected.push_back(name);
  return m;
}

WeightsMatch load_named_tensors(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                                const std::string& source, const std::string& prefix, bool strict,
                                const std::set<std::string>& derived) {
  WeightsMatch m = match_named_tensors(module, tensors, prefix, derived);
  std::vector<std::string> problems;
  for (const auto& name : m.missing) problems.push_back("missing '" + prefix + name + "'");
  problems.insert(problems.end(), m.mismatched.begin(), m.mismatched.end());
  if (strict)
    for (const auto& name : m.unexpected) problems.push_back("'" + name + "' is not in the model");
  if (!problems.empty()) {
    std::string text;
    const size_t shown = std::min<size_t>(problems.size(), 8);
    for (size_t i = 0; i < shown; ++i) text += (i ? "; " : "") + problems[i];
    if (problems.size() > shown) text += fmt::format("; and {} more", problems.size() - shown);
    throw InputError(source,
                     fmt::format("{} weight problem{}: {}", problems.size(), problems.size() > 1 ? "s" : "", text));
  }
  at::NoGradGuard no_grad;
  std::set<std::string> present(m.matched.begin(), m.matched.end());
  for (auto& p : module.named_parameters())
    if (present.count(p.key())) p.value().copy_(tensors.at(prefix + p.key()));
  for (auto& b : module.named_buffers())
    if (present.count(b.key())) b.value().copy_(tensors.at(prefix + b.key()));
  return m;
}

}  // namespace revkit
