#include "backbones/feature_maps.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backbones/backbone.h"
#include "core/error.h"

namespace revkit {

void check_declared_maps(const std::string& name, const Backbone& backbone) {
  const size_t maps = backbone.out_channels().size();
  if (maps == 0 || backbone.strides().size() != maps)
    throw InputError(
        fmt::format("backbone {} declares {} output channels and {} strides: it needs one of each per "
                    "feature map",
                    name, maps, backbone.strides().size()));
  for (int64_t stride : backbone.strides())
    if (stride < 1) throw InputError(fmt::format("backbone {} declares a stride of {}", name, stride));
}

void check_feature_maps(const std::string& name, const Backbone& backbone, const at::Tensor& input,
                        const std::vector<at::Tensor>& maps) {
  check_declared_maps(name, backbone);
  const std::vector<int64_t> channels = backbone.out_channels(), strides = backbone.strides();
  auto fits = [&](int64_t side, int64_t input_side, int64_t stride) {  // an input not a multiple may round either way
    return side == input_side / stride || (input_side % stride != 0 && side == input_side / stride + 1);
  };
  bool as_declared = maps.size() == channels.size();
  for (size_t i = 0; i < maps.size(); ++i) {
    const at::Tensor& m = maps[i];
    if (!m.defined() || m.dim() != 4)
      throw InputError(
          fmt::format("backbone {}: feature map {} of its forward is {}, not a [batch, channels, height, "
                      "width] tensor",
                      name, i, m.defined() ? fmt::format("{}-d", m.dim()) : std::string("undefined")));
    as_declared = as_declared && m.size(1) == channels[i] && fits(m.size(2), input.size(2), strides[i]) &&
                  fits(m.size(3), input.size(3), strides[i]);
  }
  if (as_declared) return;  // every forward of a model passes here: the text below is only for a failure
  std::vector<std::string> got, declared;
  for (const at::Tensor& m : maps) got.push_back(fmt::format("{}x{}x{}", m.size(1), m.size(2), m.size(3)));
  for (size_t i = 0; i < channels.size(); ++i)
    declared.push_back(fmt::format("{}x{}x{}", channels[i], input.size(2) / strides[i], input.size(3) / strides[i]));
  throw InputError(
      fmt::format("backbone {}: for a {}x{} input its forward returned feature maps of {} (channels x "
                  "height x width), but its out_channels() and strides() declare {}",
                  name, input.size(2), input.size(3), fmt::join(got, ", "), fmt::join(declared, ", ")));
}

std::vector<at::Tensor> checked_forward(const std::string& name, Backbone& backbone, const at::Tensor& input) {
  std::vector<at::Tensor> maps = backbone.forward(input);
  check_feature_maps(name, backbone, input, maps);
  return maps;
}

}  // namespace revkit
