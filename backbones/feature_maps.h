#pragma once
// A backbone's promise, checked where it runs: the feature maps its forward returns have the channels of
// out_channels() and the sizes its strides() give. A plugin that breaks it is named, not reported as a shape error
// in whatever reads the maps next.
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace revkit {

class Backbone;

// Throws InputError "backbone <name> ..." unless out_channels() and strides() name the same, non-zero number of
// maps, with strides of 1 or more.
void check_declared_maps(const std::string& name, const Backbone& backbone);

// Throws InputError "backbone <name>: ..." unless the declaration passes the check above and `maps`, returned by
// `backbone` for `input`, are as it declares.
void check_feature_maps(const std::string& name, const Backbone& backbone, const at::Tensor& input,
                        const std::vector<at::Tensor>& maps);

// backbone.forward(input), checked as above: how every caller runs a backbone it did not build itself.
std::vector<at::Tensor> checked_forward(const std::string& name, Backbone& backbone, const at::Tensor& input);

}  // namespace revkit
