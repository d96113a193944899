// revkit convert: a PyTorch checkpoint (.pt/.pth: a state dict, a training checkpoint, an Ultralytics model) written
// as revkit's safetensors, with what the checkpoint knows (model config, class count and names) in its metadata.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "models/weights_file.h"

namespace revkit::cli {
namespace {

struct ConvertArgs {
  std::string input, output;
  bool force = false;
};

int run_convert(const ConvertArgs& a) {
  namespace fs = std::filesystem;
  if (fs::exists(a.output) && !a.force) throw InputError(a.output, "exists (--force replaces it)");
  if (fs::exists(a.input) && fs::exists(a.output) && fs::equivalent(a.input, a.output))
    throw InputError(a.output, "is the input file");
  const WeightsFile file = convert_weights(a.input, a.output);
  int64_t elements = 0;
  for (const auto& [name, t] : file.tensors) elements += t.numel();
  std::cout << fmt::format("{}: {} tensors ({} values) from {}\n", a.output, file.tensors.size(), elements,
                           file.layout);
  if (!file.skipped.empty())
    std::cout << fmt::format("skipped {} entries that are not weights (first: {})\n", file.skipped.size(),
                             file.skipped.front());
  for (const char* key : {"config", "nc", "names"})
    std::cout << fmt::format("  {:<6} {}\n", key, file.metadata.count(key) ? "kept" : "not in the checkpoint");
  return 0;
}

}  // namespace

Command add_convert(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "write a PyTorch checkpoint (.pt/.pth) as revkit's .safetensors");
  cmd->add_option("input", a->input, "a torch.save checkpoint (or a .safetensors file)")->required();
  cmd->add_option("output", a->output, "the .safetensors file to write")->required();
  cmd->add_flag("--force", a->force, "replace the output if it exists");
  return [a] { return run_convert(*a); };
}

}  // namespace revkit::cli
