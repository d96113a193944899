#pragma once
// Gradient-equivalence fixtures written from the seed's Python RevCol (the reference's make_fixture.py):
// parameters under the seed's names, an input, probes, and the outputs and gradients of
// loss = sum_k sum(output_k * probe_k), with the config in the safetensors metadata.
#include <map>
#include <string>
#include <vector>

#include "backbones/revcol.h"
#include "reversible/testing.h"

namespace revkit {

struct RevColFixture {
  std::string path;
  RevColOptions options{{}, {}, 0};
  c10::ScalarType dtype = at::kFloat;
  at::Tensor input;
  std::vector<at::Tensor> probes, outputs;
  at::Tensor input_grad;
  std::map<std::string, at::Tensor> params, grads;  // by the seed's parameter names
};

// Throws InputError naming the file and what is missing or malformed.
RevColFixture load_revcol_fixture(const std::string& path);

// Builds RevCol from the fixture's config and parameters, runs it in `mode` and compares outputs, the input
// gradient and every parameter gradient with the fixture's.
reversible::EquivalenceReport check_revcol_fixture(const RevColFixture& fixture, reversible::MemoryMode mode);

}  // namespace revkit
