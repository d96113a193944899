#pragma once
// A module's weights: counting them, and loading named tensors into its parameters and buffers with every
// mismatch named.
#include <torch/nn/module.h>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace revkit {

// Number of parameter elements of `module` and everything below it.
int64_t count_parameters(const torch::nn::Module& module);

// How a set of named tensors lines up with a module's parameters and buffers.
struct WeightsMatch {
  std::vector<std::string> matched;     // module names found with the module's shape
  std::vector<std::string> missing;     // module names the tensors lack (those in `derived` not counted)
  std::vector<std::string> derived;     // module names the tensors lack that the module computes itself
  std::vector<std::string> unexpected;  // tensor names (under the prefix) the module does not have
  std::vector<std::string> mismatched;  // "'name' has shape [..], the model expects [..]"
  // "N matched, M missing, U unexpected" (and derived and mismatched when there are some).
  std::string summary() const;
};

// Matches `tensors[prefix + name]` to each parameter and buffer `name` of `module`; `derived` names buffers the
// module computes itself (a detector's strides), which a file may leave out.
WeightsMatch match_named_tensors(const torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                                 const std::string& prefix = "", const std::set<std::string>& derived = {});

// Copies `tensors[prefix + name]` into each parameter and buffer `name` of `module`, converting dtype to the
// module's. Throws InputError("<source>: ...") naming every missing name, every name the module does not have
// (when `strict`), and every shape mismatch; names in `derived` may be missing and keep the module's values.
WeightsMatch load_named_tensors(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                                const std::string& source, const std::string& prefix = "", bool strict = true,
                                const std::set<std::string>& derived = {});

}  // namespace revkit
