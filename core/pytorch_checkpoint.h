#pragma once
// Reader of torch.save checkpoints (the zip format of PyTorch >= 1.6): a state dict, a training checkpoint that
// holds one ({'model': ..., 'epoch': ...}), or a whole pickled nn.Module such as an Ultralytics or YOLOv5
// DetectionModel, read into named CPU tensors without Python. The zip container is LibTorch's own reader; the
// pickle goes through revkit's safe unpickler (core/pickle.h), so nothing in the file is ever executed.
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "core/pickle.h"

namespace revkit {

struct PyTorchCheckpoint {
  std::map<std::string, at::Tensor> tensors;
  std::vector<std::string> order;  // the names of `tensors` in state dict order
  // Where the tensors came from: "state dict", "{'model': state dict}", "pickled module TinyNet",
  // "{'ema': pickled module DetectionModel}", ...
  std::string layout;
  // Names not taken: entries that are not tensors, non-persistent buffers, a submodule met inside itself (a cycle).
  std::vector<std::string> skipped;
  // Small facts: the top-level dict's scalar entries ('epoch' -> "3", 'date' -> "2024-01-02T03:04:05") and small
  // containers as JSON ('train_args'); from a pickled module, its 'names', 'nc' (or yaml['nc']), 'yaml' and
  // 'stride' (a plain tensor attribute of detectors, not in the state dict), as JSON.
  std::map<std::string, std::string> info;
};

// Rules: a dict of str -> tensor is a state dict; a dict with 'ema' (when not None), 'model_ema', 'model' or
// 'state_dict' (in that order of preference, as Ultralytics loads `ckpt.get('ema') or ckpt['model']`) holding a
// state dict or a pickled module uses that; a pickled module (an object whose state has _parameters, _buffers and
// _modules) gives its parameters and persistent buffers under their state_dict names. A 'module.' prefix on every
// name (DataParallel) is dropped. float16 and bfloat16 tensors become float32; other dtypes stay as stored, and
// tensors that shared a storage in the file share it here.
// Throws InputError ("<path>: <problem>") for a missing file, a pre-1.6 (legacy) or TorchScript file, a broken
// archive, an unsafe or unreadable pickle, and a file with no state dict in it.
PyTorchCheckpoint read_pytorch_checkpoint(const std::string& path);

// The same from an archive in memory (the fuzzer's entry point); `name` stands for the path in messages.
PyTorchCheckpoint read_pytorch_checkpoint(const void* data, size_t size, const std::string& name);

// The unpickled data.pkl of a torch.save archive, tensors included: for callers that want more than the weights
// (optimizer state, training arguments).
PickleDocument read_pytorch_pickle(const std::string& path);

// The rules above applied to an already unpickled object; `path` names the file in messages.
PyTorchCheckpoint checkpoint_from_pickle(const PickleValue& root, const std::string& path);

}  // namespace revkit
