#pragma once
// A detection model built from an Ultralytics-style config: `nc`, `depth_multiple`, `width_multiple`, `anchors`,
// and `backbone` + `head` rows of [from, number, module, args]; or Ultralytics 8's `scales` (name: [depth, width,
// max_channels]) with the chosen `scale`. A backbone that returns several feature maps
// (RevCol) must be row 0 and occupies row positions 0..4 (fewer than five outputs are padded on the left), so
// every later row's position is its row number plus 4, as in the seed's YOLOv5 integration.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "heads/head.h"
#include "models/layers.h"

namespace revkit {

// What a user changes in a config as the model is built.
struct ModelOverrides {
  std::optional<int64_t> num_classes;
  BackboneSettings backbone;  // given to the backbone row's factory
  // Convolution weights and images in channels-last (NHWC) layout, which oneDNN's convolutions run faster on
  // (about 0.85x a yolov5n training step on two CPU cores, BENCHMARKS.md); nullopt: on unless the model has a
  // backbone row, whose columns choose their own layout (RevCol's gain nothing from it).
  std::optional<bool> channels_last;
};

// The fewest images a training batch may hold at `imgsz`: two where the deepest maps (imgsz / size_divisor) are
// 1x1 and the network has BatchNorm2d, which normalizes each channel over the batch and the map (one value has no
// variance); one otherwise. It takes the deepest maps to be those at the largest stride, as in YOLO's heads.
int64_t min_training_batch(const torch::nn::Module& network, int64_t imgsz, int64_t size_divisor);
// The largest --imgsz revkit takes: a 16384x16384 image is 3 GB as a float tensor, and a side much larger
// overflows the sizes of the tensors built from it.
constexpr int64_t kMaxImageSize = 16384;
// InputError when --imgsz is not in 1..kMaxImageSize.
void check_image_size_option(int64_t imgsz);
// InputError, naming `what` (the option or the batch), when a training batch of `images` is below that.
void check_training_batch(const torch::nn::Module& network, int64_t imgsz, int64_t size_divisor, int64_t images,
                          const std::string& what);

// "auto" (nullopt), "on" or "off", as --channels-last takes it; InputError otherwise.
std::optional<bool> parse_channels_last(const std::string& value);

struct LayerInfo {
  int64_t row = 0;
  int64_t position = 0;       // first output position
  std::vector<int64_t> from;  // input positions (-1: the image)
  std::string from_text;      // `from` as the config wrote it
  int64_t repeats = 1;
  int64_t params = 0;
  std::string type;  // the layer type the row names
  std::string args;
  std::vector<int64_t> out_channels;
  bool backbone = false;  // a backbone's row (several outputs)
};

class DetectionModelImpl : public torch::nn::Module {
 public:
  // `source` names the config in errors (a file path or a built-in name).
  DetectionModelImpl(const nlohmann::json& config, const std::string& source, const ModelOverrides& overrides = {});

  // Training mode: the head's raw maps, one per level. Eval mode: one [batch, boxes, nc + 5] tensor of
  // decoded boxes. Input sides must be multiples of size_divisor().
  std::vector<at::Tensor> forward(const at::Tensor& images);
  // The head's raw maps in either mode; head()->decode turns them into boxes.
  std::vector<at::Tensor> forward_raw(const at::Tensor& images);

  const std::vector<LayerInfo>& layers() const { return layers_; }
  std::shared_ptr<DetectionHead> head() const { return head_; }
  int64_t num_classes() const { return num_classes_; }
  const std::vector<double>& strides() const { return strides_; }
  int64_t size_divisor() const { return size_divisor_; }
  // Whether its 4-D parameters are channels-last; forward then hands the layers channels-last images.
  bool channels_last() const { return channels_last_; }
  // `imgsz` rounded up to a multiple of size_divisor(), with a warning when it changes (Ultralytics'
  // check_img_size); InputError when it is not positive.
  int64_t checked_image_size(int64_t imgsz) const;
  // Buffers the model computes when it is built, which weights files may leave out (Detect's strides: a plain
  // attribute in Ultralytics' models, not in their state dicts).
  std::set<std::string> derived_buffers() const;
  // The config rows that hold a backbone, as the "model.<row>." prefix of their parameter names.
  std::vector<std::string> backbone_prefixes() const;

 private:
  struct Step {
    std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>&)> forward;
    std::vector<int64_t> from;     // positions; -1 is the image
    std::vector<int64_t> outputs;  // positions written (padding slots get undefined tensors)
  };
  struct Header;
  // What the rows built so far output: channels by row position (0 for a backbone's unused positions), and how
  // many positions a multi-output backbone took beyond its row.
  struct Positions {
    std::vector<int64_t> channels;
    int64_t offset = 0;
  };
  // The three steps of building: the config's top-level keys (nc set here), one row, then strides from a probe.
  Header read_header(const nlohmann::json& cfg, const std::string& source, const ModelOverrides& overrides);
  static void read_scale(const nlohmann::json& cfg, const std::string& source, Header& header);
  void add_row(const Header& header, size_t i, const std::string& source, const ModelOverrides& overrides,
               Positions& positions);
  void finish(int64_t positions, const std::string& source);
  std::vector<at::Tensor> run(const at::Tensor& images, bool up_to_head);
  void check_input(const at::Tensor& images) const;
  at::Tensor in_layout(const at::Tensor& images) const;

  torch::nn::ModuleList model{nullptr};
  std::vector<Step> steps_;
  std::vector<int64_t> last_use_;  // per position: the last step that reads it
  std::vector<LayerInfo> layers_;
  std::shared_ptr<DetectionHead> head_;
  int64_t num_classes_ = 0;
  std::vector<double> strides_;
  int64_t size_divisor_ = 32;
  bool channels_last_ = false;
};
TORCH_MODULE(DetectionModel);

// The built-in model configs, by name: yolov5-revcol-tiny (the seed's), yolov5-revcol-small,
// yolov5-revcol-base, yolov5n, yolov5s, yolov5m, yolov8-revcol-tiny, and yolov8n/s/m/l/x (one config with scales,
// a scale per name, as Ultralytics 8 names them).
std::vector<std::string> builtin_model_names();
// A built-in name or a .yaml/.yml/.json path; `source` receives what errors should call it. As Ultralytics 8 does,
// a name or path ending in a scale letter (yolov8s, yolov8s.yaml) that is not itself a config selects that scale
// of the config without the letter (yolov8.yaml); a config with scales but none chosen takes its scale from the
// file name when that names one.
nlohmann::json load_model_config(const std::string& name_or_path, std::string* source = nullptr);
// load_model_config + DetectionModel.
DetectionModel build_model(const std::string& name_or_path, const ModelOverrides& overrides = {});

}  // namespace revkit
