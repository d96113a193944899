#include "core/safetensors.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/excerpt.h"

namespace revkit {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit

const std::vector<std::pair<std::string, c10::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, c10::ScalarType>> table = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool}};
  return table;
}

struct Entry {
  std::string name;
  c10::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& info) {
  auto fail = [&](const std::string& what) { throw InputError(path, "tensor '" + name + "': " + what); };
  if (!info.is_object()) fail("header entry is not an object");
  if (!info.contains("dtype") || !info["dtype"].is_string()) fail("missing string field 'dtype'");
  if (!info.contains("shape") || !info["shape"].is_array()) fail("missing array field 'shape'");
  if (!info.contains("data_offsets") || !info["data_offsets"].is_array() || info["data_offsets"].size() != 2)
    fail("missing field 'data_offsets' [begin, end]");
  Entry e;
  e.name = name;
  const std::string dt = info["dtype"].get<std::string>();
  auto it = std::find_if(dtype_table().begin(), dtype_table().end(), [&](const auto& p) { return p.first == dt; });
  if (it == dtype_table().end()) fail("unsupported dtype '" + dt + "'");
  e.dtype = it->second;
  uint64_t numel = 1;
  for (const auto& d : info["shape"]) {
    if (!d.is_number_unsigned()) fail("shape " + json_excerpt(info["shape"]) + " has an entry that is not a size");
    const uint64_t v = d.get<uint64_t>();
    if (v > 0 && numel > std::numeric_limits<int64_t>::max() / v)
      fail("shape " + json_excerpt(info["shape"]) + " is too large");
    numel *= v;
    e.shape.push_back(static_cast<int64_t>(v));
  }
  for (const auto& o : info["data_offsets"])
    if (!o.is_number_unsigned()) fail("data_offsets " + json_excerpt(info["data_offsets"]) + " are not byte offsets");
  e.begin = info["data_offsets"][0].get<uint64_t>();
  e.end = info["data_offsets"][1].get<uint64_t>();
  if (e.end < e.begin) fail(fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
  // numel fits int64, but times the element size it may not: a lying shape must not wrap around to a small size.
  if (numel > std::numeric_limits<int64_t>::max() / c10::elementSize(e.dtype))
    fail("shape " + json_excerpt(info["shape"]) + " is too large");
  const uint64_t need = numel * c10::elementSize(e.dtype);
  if (e.end - e.begin != need)
    fail(fmt::format("data_offsets span {} bytes but dtype {} and shape {} need {}", e.end - e.begin, dt,
                     json_excerpt(info["shape"]), need));
  return e;
}

}  // namespace

std::string safetensors_dtype_name(c10::ScalarType dtype) {
  for (const auto& p : dtype_table())
    if (p.second == dtype) return p.first;
  throw InputError(std::string("safetensors cannot hold dtype ") + c10::toString(dtype));
}

Safetensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw InputError(path, "cannot open file");
  const auto file_size = static_cast<uint64_t>(in.tellg());
  if (file_size < 8)
    throw InputError(path, fmt::format("truncated: {} bytes, fewer than the 8-byte header length", file_size));
  in.seekg(0);
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes)
    throw InputError(path, fmt::format("header length {} is over the format's limit of 100 MB: not a safetensors file?",
                                       header_len));
  if (8 + header_len > file_size)
    throw InputError(
        path, fmt::format("truncated: the header claims {} bytes but only {} follow", header_len, file_size - 8));
  std::string header_text(header_len, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_len));

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, "header is not valid JSON: " + printable(e.what()));
  }
  if (!header.is_object()) throw InputError(path, "header is not a JSON object");

  Safetensors out;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) throw InputError(path, "__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) throw InputError(path, "__metadata__ value '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, it.key(), it.value()));
  }

  // The tensors must tile the data section exactly: no gaps, no overlaps, nothing past its end.
  const uint64_t data_size = file_size - 8 - header_len;
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  for (const Entry* e : by_offset) {
    if (e->end > data_size)
      throw InputError(path, fmt::format("truncated: tensor '{}' ends at byte {} of a data section of {} bytes",
                                         e->name, e->end, data_size));
    if (e->begin != expected)
      throw InputError(path, fmt::format("inconsistent header: tensor '{}' starts at byte {}, expected {} ({})",
                                         e->name, e->begin, expected, e->begin < expected ? "overlap" : "gap"));
    expected = e->end;
  }
  if (expected != data_size)
    throw InputError(
        path, fmt::format("inconsistent header: tensors cover {} bytes of a data section of {}", expected, data_size));

  const uint64_t data_start = 8 + header_len;
  for (const auto& e : entries) {
    at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(e.dtype));
    if (e.end > e.begin) {
      in.seekg(static_cast<std::streamoff>(data_start + e.begin));
      in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
      if (!in) throw InputError(path, "read error in tensor '" + e.name + "'");
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<at::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw InputError(path, "a tensor cannot be named __metadata__");
    TORCH_CHECK(tensor.defined(), "write_safetensors: tensor '", name, "' is undefined");
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    blobs.push_back(std::move(t));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile file(path);
  unsigned char len_bytes[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i, n >>= 8) len_bytes[i] = static_cast<unsigned char>(n & 0xff);
  file.write(len_bytes, 8);
  file.write(text.data(), text.size());
  for (const auto& t : blobs) file.write(t.data_ptr(), t.numel() * t.element_size());
  file.commit();
}

}  // namespace revkit
