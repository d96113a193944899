#include "heads/dfl_detect.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/weights.h"

using namespace revkit;

TEST_CASE("the v8 head: branch widths, raw maps and Ultralytics' bias initialisation") {
  std::ifstream in(REVKIT_TEST_FIXTURES "/yolov8/yolov8_facts.json");
  const auto facts = nlohmann::json::parse(in)["models"]["yolov8n_nc80"];
  DflDetect head(DflDetectOptions(80, {64, 128, 256}));
  head->set_strides({8, 16, 32});
  // Box branch max(16, 64 / 4, 4 x 16) = 64 wide, class branch max(64, min(80, 100)) = 80.
  const auto first = head->cv2[0]->as<torch::nn::Sequential>();
  CHECK(first->ptr(0)->named_parameters()["conv.weight"].size(0) == facts["detect_box_branch_channels_c2"]);
  CHECK(head->cv3[0]->as<torch::nn::Sequential>()->ptr(0)->named_parameters()["conv.weight"].size(0) ==
        facts["detect_cls_branch_channels_c3"]);
  for (int i = 0; i < 3; ++i) {
    const auto& f = facts["bias_init"][i];
    const at::Tensor box = head->cv2[i]->as<torch::nn::Sequential>()->ptr(2)->as<torch::nn::Conv2d>()->bias;
    const at::Tensor cls = head->cv3[i]->as<torch::nn::Sequential>()->ptr(2)->as<torch::nn::Conv2d>()->bias;
    CHECK(at::all(box == f["box_bias_value"].get<float>()).item<bool>());
    CHECK(at::all(cls == f["cls_bias_value_float32"].get<float>()).item<bool>());
  }
  // The DFL's integral weights are the bin indices, not trained.
  CHECK(at::equal(head->dfl->conv->weight.flatten(), at::arange(16, at::kFloat)));
  CHECK(!head->dfl->conv->weight.requires_grad());
  // Strides set again (a model loaded from weights) keep the biases.
  head->cv2[0]->as<torch::nn::Sequential>()->ptr(2)->as<torch::nn::Conv2d>()->bias.data().fill_(0.5);
  head->set_strides({8, 16, 32});
  CHECK(head->cv2[0]->as<torch::nn::Sequential>()->ptr(2)->as<torch::nn::Conv2d>()->bias[0].item<float>() == 0.5f);

  const auto maps = head->raw({at::zeros({2, 64, 8, 8}), at::zeros({2, 128, 4, 4}), at::zeros({2, 256, 2, 2})});
  REQUIRE(maps.size() == 3);
  CHECK(maps[0].sizes() == at::IntArrayRef({2, 144, 8, 8}));
  CHECK(maps[2].sizes() == at::IntArrayRef({2, 144, 2, 2}));
}

TEST_CASE("v8 decoding, by hand: cell centres, expected distances, strides") {
  DflDetect head(DflDetectOptions(2, {8, 8}));
  head->set_strides({8, 16});
  // Level 0: a 2x1 map (ny 1, nx 2); level 1: 1x1. All box logits zero (each side 7.5 bins) except the first
  // cell's left side, all mass on bin 3; class logits 0 and log 3 (scores 0.5, 0.75).
  at::Tensor l0 = at::zeros({1, 64 + 2, 1, 2}), l1 = at::zeros({1, 64 + 2, 1, 1});
  l0.narrow(1, 0, 16).select(2, 0).select(2, 0).fill_(-100);
  l0[0][3][0][0] = 100;
  l0[0][65].fill_(std::log(3.0));
  const at::Tensor d = head->decode({l0, l1});
  REQUIRE(d.sizes() == at::IntArrayRef({1, 3, 6}));
  // Cell (0, 0) of stride 8: centre (0.5, 0.5) cells; left 3, top/right/bottom 7.5: x1 -2.5, x2 8, y -7 .. 8.
  CHECK(d[0][0][0].item<double>() == doctest::Approx((-2.5 + 8) / 2 * 8));
  CHECK(d[0][0][1].item<double>() == doctest::Approx(0.5 * 8));
  CHECK(d[0][0][2].item<double>() == doctest::Approx(10.5 * 8));
  CHECK(d[0][0][3].item<double>() == doctest::Approx(15 * 8));
  // Cell (0, 1): centre x 1.5 cells.
  CHECK(d[0][1][0].item<double>() == doctest::Approx(1.5 * 8));
  // Level 1's only cell, stride 16.
  CHECK(d[0][2][0].item<double>() == doctest::Approx(0.5 * 16));
  CHECK(d[0][2][2].item<double>() == doctest::Approx(15 * 16));
  CHECK(d[0][0][4].item<double>() == doctest::Approx(0.5));
  CHECK(d[0][0][5].item<double>() == doctest::Approx(0.75));
}

TEST_CASE("v8 NMS: class scores are the confidences; multi-label keeps every class above the threshold") {
  DflDetect head(DflDetectOptions(2, {8}));
  // Three boxes (x, y, w, h, score0, score1): two overlapping, one apart.
  const at::Tensor decoded = at::tensor({10.0f, 10.0f, 10.0f, 10.0f, 0.9f, 0.6f,   //
                                         11.0f, 10.0f, 10.0f, 10.0f, 0.8f, 0.05f,  //
                                         50.0f, 50.0f, 10.0f, 10.0f, 0.3f, 0.4f})
                                 .view({1, 3, 6});
  const at::Tensor single = head->nms(decoded, 0.25, 0.5, 300, false)[0];
  REQUIRE(single.size(0) == 2);  // box 1 suppressed by box 0 (class 0); box 2 keeps its best class 1
  CHECK(single[0][4].item<float>() == doctest::Approx(0.9));
  CHECK(single[1][5].item<float>() == 1.0f);
  CHECK(single[0][0].item<float>() == doctest::Approx(5.0));  // x1 = 10 - 5
  const at::Tensor multi = head->nms(decoded, 0.25, 0.5, 300, true)[0];
  CHECK(multi.size(0) == 4);  // (0, c0), (0, c1), (2, c1), (2, c0); box 1 suppressed in class 0
  CHECK(head->nms(decoded, 0.95, 0.5, 300, true)[0].size(0) == 0);
  // One class: multi-label is single-label (Ultralytics: multi_label &= nc > 1).
  DflDetect one(DflDetectOptions(1, {8}));
  const at::Tensor d1 = decoded.narrow(2, 0, 5).contiguous();
  CHECK(one->nms(d1, 0.25, 0.5, 300, true)[0].size(0) == one->nms(d1, 0.25, 0.5, 300, false)[0].size(0));
}

TEST_CASE("the class count in a v8 head's weights") {
  DflDetect head(DflDetectOptions(1, {8}));
  std::map<std::string, at::Tensor> tensors{{"model.22.cv3.0.2.weight", at::zeros({7, 80, 1, 1})}};
  CHECK(head->classes_in_weights(tensors, "model.22.") == 7);
  CHECK(head->classes_in_weights(tensors, "model.21.") == -1);
  CHECK(head->defaults().loss_names[2] == "dfl_loss");
  CHECK(head->defaults().close_mosaic == 10);
  CHECK(head->defaults().val_iou == 0.7);
}
