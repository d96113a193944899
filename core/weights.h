#pragma once
// A module's weights: counting them, and loading named tensors into its parameters and buffers with every
// mismatch named.
#include <torch/nn/module.h>

#include <map>
#include <string>

namespace revkit {

// Number of parameter elements of `module` and everything below it.
int64_t count_parameters(const torch::nn::Module& module);

// Copies `tensors[prefix + name]` into each parameter and buffer `name` of `module`, converting dtype to the
// module's. Throws InputError("<source>: ...") naming every missing name, every name the module does not have
// (when `strict`), and every shape mismatch.
void load_named_tensors(torch::nn::Module& module, const std::map<std::string, at::Tensor>& tensors,
                        const std::string& source, const std::string& prefix = "", bool strict = true);

}  // namespace revkit
