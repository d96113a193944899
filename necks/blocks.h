#pragma once
// The YOLO neck and backbone blocks, with Ultralytics' argument conventions and parameter names, so published
// configs build to the published parameter counts (yolov5s: 7,235,389 at 80 classes).
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

namespace revkit {

// Padding that keeps the spatial size for stride 1 ("same"), as Ultralytics' autopad.
int64_t autopad(int64_t kernel, int64_t dilation = 1);

struct ConvOptions {
  ConvOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size = 1)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, kernel_size);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, padding) = -1;  // -1: autopad
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(int64_t, dilation) = 1;
  TORCH_ARG(bool, act) = true;  // SiLU
};

// Batch statistics shared across the processes of a data-parallel run (SyncBatchNorm): when a Conv has one, its
// BatchNorm normalises with the statistics of the global batch in training mode.
class BatchNormSync {
 public:
  virtual ~BatchNormSync() = default;
  virtual at::Tensor forward(const at::Tensor& x, torch::nn::BatchNorm2dImpl& bn) = 0;
};

// Conv2d (no bias) + BatchNorm2d (eps 1e-3, momentum 0.03, as YOLOv5 sets them) + SiLU.
class ConvImpl : public torch::nn::Module {
 public:
  explicit ConvImpl(const ConvOptions& options);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  bool act;
  std::shared_ptr<BatchNormSync> batch_norm_sync;  // unset: plain BatchNorm
};
TORCH_MODULE(Conv);

// x + cv2(cv1(x)) when shortcut and the channels match. YOLOv5's has a 1x1 then a 3x3 conv; C2f's (YOLOv8) two 3x3.
class BottleneckImpl : public torch::nn::Module {
 public:
  BottleneckImpl(int64_t c1, int64_t c2, bool shortcut = true, int64_t groups = 1, double expansion = 0.5,
                 int64_t first_kernel = 1);
  at::Tensor forward(const at::Tensor& x);
  Conv cv1{nullptr}, cv2{nullptr};
  bool add;
};
TORCH_MODULE(Bottleneck);

// CSP bottleneck with three convolutions (YOLOv5).
class C3Impl : public torch::nn::Module {
 public:
  C3Impl(int64_t c1, int64_t c2, int64_t n = 1, bool shortcut = true, int64_t groups = 1, double expansion = 0.5);
  at::Tensor forward(const at::Tensor& x);
  Conv cv1{nullptr}, cv2{nullptr}, cv3{nullptr};
  torch::nn::Sequential m{nullptr};
};
TORCH_MODULE(C3);

// CSP bottleneck with two convolutions, every bottleneck's output kept (YOLOv8).
class C2fImpl : public torch::nn::Module {
 public:
  C2fImpl(int64_t c1, int64_t c2, int64_t n = 1, bool shortcut = false, int64_t groups = 1, double expansion = 0.5);
  at::Tensor forward(const at::Tensor& x);
  Conv cv1{nullptr}, cv2{nullptr};
  torch::nn::ModuleList m{nullptr};
  int64_t hidden;
};
TORCH_MODULE(C2f);

// Spatial pyramid pooling, fast: three chained max pools of one kernel size, concatenated.
class SPPFImpl : public torch::nn::Module {
 public:
  SPPFImpl(int64_t c1, int64_t c2, int64_t kernel = 5);
  at::Tensor forward(const at::Tensor& x);
  Conv cv1{nullptr}, cv2{nullptr};
  int64_t kernel;
};
TORCH_MODULE(SPPF);

// Concatenation of its inputs along one dimension.
class ConcatImpl : public torch::nn::Module {
 public:
  explicit ConcatImpl(int64_t dimension = 1) : dimension(dimension) {}
  at::Tensor forward(const std::vector<at::Tensor>& inputs);
  int64_t dimension;
};
TORCH_MODULE(Concat);

// Nearest or bilinear upsampling by an integer factor (nn.Upsample(None, 2, 'nearest')).
class UpsampleImpl : public torch::nn::Module {
 public:
  UpsampleImpl(double scale_factor, std::string mode = "nearest");
  at::Tensor forward(const at::Tensor& x);
  double scale_factor;
  std::string mode;
};
TORCH_MODULE(Upsample);

}  // namespace revkit
