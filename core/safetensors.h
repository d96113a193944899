#pragma once
// Reader and writer of the safetensors format: an 8-byte little-endian header length, a JSON header
// ({name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}), then the raw tensor bytes.
// Supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace revkit {

struct Safetensors {
  std::map<std::string, at::Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Throws InputError ("<path>: <problem>") for a missing, truncated or inconsistent file.
Safetensors read_safetensors(const std::string& path);

// Writes atomically: to a temporary file beside `path`, flushed, then renamed over it, so a crash leaves
// either the old file or the new one. Tensors are written on the CPU, contiguous, names sorted.
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// "F32" for at::kFloat and so on; throws InputError for a dtype the format cannot hold.
std::string safetensors_dtype_name(c10::ScalarType dtype);

}  // namespace revkit
