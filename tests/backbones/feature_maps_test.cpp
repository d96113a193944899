#include "backbones/feature_maps.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "backbones/backbone.h"
#include "core/error.h"

using namespace revkit;

namespace {

// Declares what it is given; never runs (the maps under test are made by the test).
class Declared : public Backbone {
 public:
  Declared(std::vector<int64_t> channels, std::vector<int64_t> strides)
      : channels_(std::move(channels)), strides_(std::move(strides)) {}
  std::vector<at::Tensor> forward(const at::Tensor&) override { return {}; }
  std::vector<int64_t> out_channels() const override { return channels_; }
  std::vector<int64_t> strides() const override { return strides_; }

 private:
  std::vector<int64_t> channels_, strides_;
};

at::Tensor map(int64_t channels, int64_t height, int64_t width) { return at::zeros({2, channels, height, width}); }

doctest::Contains contains(const std::string& text) { return doctest::Contains(text.c_str()); }

}  // namespace

TEST_CASE("maps with the declared channels and the sizes the strides give pass") {
  const Declared backbone({8, 16}, {4, 8});
  check_feature_maps("two_maps", backbone, at::zeros({2, 3, 64, 96}), {map(8, 16, 24), map(16, 8, 12)});
  // An input side that is no multiple of a stride may round either way: 70 / 8 is 8 or 9.
  check_feature_maps("two_maps", backbone, at::zeros({2, 3, 70, 70}), {map(8, 17, 18), map(16, 9, 8)});
}

TEST_CASE("maps other than declared are named with what came and what was declared") {
  const Declared backbone({8, 16}, {4, 8});
  const at::Tensor input = at::zeros({2, 3, 64, 64});
  const std::string declared = "but its out_channels() and strides() declare 8x16x16, 16x8x8";
  CHECK_THROWS_WITH_AS(check_feature_maps("mislabelled", backbone, input, {map(8, 16, 16), map(12, 8, 8)}),
                       ("backbone mislabelled: for a 64x64 input its forward returned feature maps of 8x16x16, 12x8x8 "
                        "(channels x height x width), " +
                        declared)
                           .c_str(),
                       InputError);
  CHECK_THROWS_WITH_AS(check_feature_maps("mislabelled", backbone, input, {map(8, 16, 16), map(16, 16, 16)}),
                       contains("returned feature maps of 8x16x16, 16x16x16 (channels x height x width), " + declared),
                       InputError);
  CHECK_THROWS_WITH_AS(check_feature_maps("mislabelled", backbone, input, {map(8, 16, 16)}),
                       contains("returned feature maps of 8x16x16 (channels x height x width), " + declared),
                       InputError);
  CHECK_THROWS_WITH_AS(check_feature_maps("mislabelled", backbone, input, {map(8, 16, 16), at::zeros({2, 16, 8})}),
                       "backbone mislabelled: feature map 1 of its forward is 3-d, not a [batch, channels, height, "
                       "width] tensor",
                       InputError);
  CHECK_THROWS_WITH_AS(check_feature_maps("mislabelled", backbone, input, {at::Tensor(), map(16, 8, 8)}),
                       doctest::Contains("feature map 0 of its forward is undefined"), InputError);
}

TEST_CASE("a declaration that names no map, unequal counts or a stride under 1 is refused before any division") {
  CHECK_THROWS_WITH_AS(check_declared_maps("empty", Declared({}, {})),
                       "backbone empty declares 0 output channels and 0 strides: it needs one of each per feature map",
                       InputError);
  CHECK_THROWS_WITH_AS(check_declared_maps("uneven", Declared({8, 16}, {4})),
                       doctest::Contains("declares 2 output channels and 1 strides"), InputError);
  CHECK_THROWS_WITH_AS(check_declared_maps("flat", Declared({8}, {0})), "backbone flat declares a stride of 0",
                       InputError);
  // The map check runs the declaration check first: a stride of 0 would divide by zero.
  CHECK_THROWS_WITH_AS(check_feature_maps("flat", Declared({8}, {0}), at::zeros({2, 3, 8, 8}), {map(8, 8, 8)}),
                       "backbone flat declares a stride of 0", InputError);
  check_declared_maps("fine", Declared({8, 16}, {4, 8}));
}
