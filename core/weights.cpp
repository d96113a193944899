#include "core/weights.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

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

void load_named_tensors(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                        const std::string& source, const std::string& prefix, bool strict) {
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& p : module.named_parameters()) targets.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers()) targets.emplace_back(b.key(), b.value());

  std::vector<std::string> problems;
  std::set<std::string> used;
  for (const auto& [name, target] : targets) {
    auto it = tensors.find(prefix + name);
    if (it == tensors.end()) {
      problems.push_back("missing '" + prefix + name + "'");
      continue;
    }
    used.insert(it->first);
    if (it->second.sizes() != target.sizes())
      problems.push_back(fmt::format("'{}' has shape {}, the model expects {}", it->first,
                                     shape_text(it->second.sizes()), shape_text(target.sizes())));
  }
  if (strict)
    for (const auto& [name, t] : tensors)
      if (name.compare(0, prefix.size(), prefix) == 0 && !used.count(name))
        problems.push_back("'" + name + "' is not in the model");
  if (!problems.empty()) {
    std::string text;
    const size_t shown = std::min<size_t>(problems.size(), 8);
    for (size_t i = 0; i < shown; ++i) text += (i ? "; " : "") + problems[i];
    if (problems.size() > shown) text += fmt::format("; and {} more", problems.size() - shown);
    throw InputError(source,
                     fmt::format("{} weight problem{}: {}", problems.size(), problems.size() > 1 ? "s" : "", text));
  }
  at::NoGradGuard no_grad;
  for (auto& [name, target] : targets) target.copy_(tensors.at(prefix + name));
}

}  // namespace revkit
