#include "necks/blocks.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include "core/weights.h"

using namespace revkit;

TEST_CASE("autopad keeps the size at stride 1") {
  CHECK(autopad(1) == 0);
  CHECK(autopad(3) == 1);
  CHECK(autopad(6) == 3);
  CHECK(autopad(3, 2) == 2);
}

TEST_CASE("Conv: conv without bias, BatchNorm with YOLOv5's eps and momentum, SiLU") {
  Conv conv(ConvOptions(3, 16, 3).stride(2));
  CHECK(count_parameters(*conv) == 3 * 16 * 9 + 2 * 16);
  CHECK(conv->bn->options.eps() == doctest::Approx(1e-3));
  CHECK(conv->bn->options.momentum().value() == doctest::Approx(0.03));
  CHECK(conv->forward(at::randn({2, 3, 32, 32})).sizes() == at::IntArrayRef({2, 16, 16, 16}));
  // Ultralytics' stem: k 6, s 2, p 2
  Conv stem(ConvOptions(3, 16, 6).stride(2).padding(2));
  CHECK(stem->forward(at::randn({1, 3, 64, 64})).sizes() == at::IntArrayRef({1, 16, 32, 32}));
  // eval: conv, batch norm with running stats (0, 1), SiLU: x * sigmoid(x) of the conv output
  Conv fresh(ConvOptions(3, 16, 3));  // running statistics still 0 and 1
  fresh->eval();
  at::Tensor x = at::randn({1, 3, 8, 8});
  at::Tensor z = fresh->conv->forward(x) / std::sqrt(1 + 1e-3);
  CHECK(at::allclose(fresh->forward(x), z * at::sigmoid(z), 1e-5, 1e-6));
}

TEST_CASE("Bottleneck, C3, C2f and SPPF: hand-counted parameters and shapes") {
  CHECK(Bottleneck(8, 8, true, 1, 1.0)->add);
  CHECK_FALSE(Bottleneck(8, 16)->add);
  C3 c3(16, 16, 1);
  CHECK(count_parameters(*c3) == 144 + 144 + 288 + 80 + 592);
  CHECK(c3->forward(at::randn({1, 16, 8, 8})).sizes() == at::IntArrayRef({1, 16, 8, 8}));
  C2f c2f(16, 32, 2);
  CHECK(count_parameters(*c2f) == 576 + 2112 + 2 * 4672);
  CHECK(c2f->forward(at::randn({1, 16, 8, 8})).sizes() == at::IntArrayRef({1, 32, 8, 8}));
  SPPF sppf(16, 16, 5);
  CHECK(count_parameters(*sppf) == 144 + 544);
  CHECK(sppf->forward(at::randn({1, 16, 8, 8})).sizes() == at::IntArrayRef({1, 16, 8, 8}));
  CHECK_THROWS_WITH(SPPF(16, 16, 4), doctest::Contains("odd"));
}

TEST_CASE("Concat and Upsample") {
  Concat cat(1);
  CHECK(cat->forward({at::ones({1, 2, 4, 4}), at::zeros({1, 3, 4, 4})}).sizes() == at::IntArrayRef({1, 5, 4, 4}));
  Upsample up(2.0, "nearest");
  at::Tensor x = at::arange(4.0).view({1, 1, 2, 2});
  at::Tensor y = up->forward(x);
  CHECK(y.sizes() == at::IntArrayRef({1, 1, 4, 4}));
  CHECK(y[0][0][1][1].item<float>() == 0.0f);
  CHECK(y[0][0][3][3].item<float>() == 3.0f);
  CHECK_THROWS(Upsample(2.0, "cubic"));
}
