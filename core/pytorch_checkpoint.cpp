#include "core/pytorch_checkpoint.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/file_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <unordered_set>
#include <utility>

#include "core/error.h"

namespace revkit {
namespace {

using Kind = PickleValue::Kind;
namespace serialize = caffe2::serialize;

// Reads from a buffer the caller keeps alive. A read past the end comes back short, which miniz reports as an
// error, instead of reading beyond the buffer as LibTorch's own MemoryReadAdapter would.
class BoundedMemoryAdapter final : public serialize::ReadAdapterInterface {
 public:
  BoundedMemoryAdapter(const void* data, size_t size) : data_(static_cast<const char*>(data)), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= size_) return 0;
    n = static_cast<size_t>(std::min<uint64_t>(n, size_ - pos));
    std::memcpy(buf, data_ + pos, n);
    return n;
  }

 private:
  const char* data_;
  size_t size_;
};

// An exception's first line, without the advice miniz errors carry after their first sentence.
std::string reason(const std::exception& e) {
  std::string line = first_line(e);
  if (const size_t advice = line.find(". This is an internal miniz error"); advice != std::string::npos)
    line.resize(advice);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

// Runs a call into LibTorch and turns what it throws into InputError: the CLI reports a user's bad file as one
// line, never as a C++ stack trace.
template <class F>
auto guarded(const std::string& path, const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(path, what + ": " + reason(e));
  }
}

// Recognizes what a file that is not a zip archive is, for a message that says what to do about it.
void check_container(serialize::ReadAdapterInterface& in, const std::string& path) {
  const uint64_t size = in.size();
  if (size == 0) throw InputError(path, "empty file");
  unsigned char head[512] = {};
  const size_t n = in.read(0, head, static_cast<size_t>(std::min<uint64_t>(size, sizeof head)), "checking the format");
  if (n >= 2 && head[0] == 'P' && head[1] == 'K') return;
  const std::string resave =
      "re-save it with torch.save from PyTorch >= 1.6 (_use_new_zipfile_serialization=True, the default)";
  if (n >= 2 && head[0] == 0x80 && head[1] <= 5)
    throw InputError(path,
                     "a pickle, not a zip archive: the legacy torch.save format (PyTorch < 1.6 or "
                     "_use_new_zipfile_serialization=False) or a plain pickle; " +
                         resave);
  if (n >= 262 && std::memcmp(head + 257, "ustar", 5) == 0)
    throw InputError(path, "a tar archive: the torch.save format of PyTorch < 0.4; " + resave);
  throw InputError(path, "not a zip archive, so not a checkpoint torch.save wrote (PyTorch >= 1.6)");
}

// data.pkl and data/<key> of an archive, read through LibTorch's PyTorchStreamReader.
class Archive {
 public:
  Archive(std::shared_ptr<serialize::ReadAdapterInterface> in, std::string path)
      : path_(std::move(path)), file_size_(in->size()) {
    check_container(*in, path_);
    reader_ = guarded(path_, "cannot read it as a zip archive (truncated or damaged?)",
                      [&] { return std::make_unique<serialize::PyTorchStreamReader>(in); });
  }

  PickleDocument unpickle() {
    // TorchScript archives have a data.pkl too, of scripted classes whose weights are attributes, not _parameters.
    if (has("constants.pkl"))
      throw InputError(
          path_, "a TorchScript archive (torch.jit.save), not a torch.save checkpoint: load it with torch::jit::load");
    if (!has("data.pkl")) throw InputError(path_, "no data.pkl in the archive: not a checkpoint torch.save wrote");
    // PyTorch writes its machine's byte order; a file without the record predates it and is little-endian in practice.
    if (has("byteorder")) {
      std::string order = read_string("byteorder", 16);
      order = order.substr(0, order.find_last_not_of(" \t\r\n") + 1);
      if (order != "little")
        throw InputError(path_, "byteorder is '" + order + "': only little-endian checkpoints can be read");
    }
    const std::string pickle = read_string("data.pkl", file_size_);
    UnpickleOptions options;
    options.file = path_;
    options.record = "data.pkl";
    options.load_storage = [this](const std::string& key, c10::ScalarType dtype, int64_t numel) {
      return load_storage(key, dtype, numel);
    };
    return revkit::unpickle(pickle.data(), pickle.size(), options);
  }

 private:
  bool has(const std::string& name) {
    return guarded(path_, "cannot read the zip archive", [&] { return reader_->hasRecord(name); });
  }

  // The size a record claims, checked against the file: torch.save stores records uncompressed, so a record larger
  // than the whole file is a damaged (or deliberately inflated) archive, not something to allocate for.
  size_t record_size(const std::string& name, uint64_t limit) {
    const size_t n = guarded(path_, "cannot read record '" + name + "'", [&] { return reader_->getRecordSize(name); });
    if (n > limit)
      throw InputError(path_, fmt::format("record '{}' claims {} bytes, more than {}: a compressed or damaged archive",
                                          name, n, limit));
    return n;
  }

  std::string read_string(const std::string& name, uint64_t limit) {
    const size_t n = record_size(name, std::min(limit, file_size_));
    std::string out(n, '\0');
    if (n > 0)
      guarded(path_, "cannot read record '" + name + "'", [&] { return reader_->getRecord(name, out.data(), n); });
    return out;
  }

  at::Tensor load_storage(const std::string& key, c10::ScalarType dtype, int64_t numel) {
    const std::string name = "data/" + key;
    if (!has(name))
      throw InputError(path_, "data.pkl refers to storage '" + name + "', which the archive does not have");
    const size_t n = record_size(name, file_size_);
    const size_t element_size = c10::elementSize(dtype);
    if (static_cast<uint64_t>(numel) > n / element_size || static_cast<uint64_t>(numel) * element_size != n)
      throw InputError(path_, fmt::format("storage '{}' holds {} bytes, but data.pkl declares {} elements of {}", name,
                                          n, numel, c10::toString(dtype)));
    at::Tensor bytes = at::empty({static_cast<int64_t>(n)}, at::TensorOptions().dtype(at::kByte));
    if (n > 0)
      guarded(path_, "cannot read record '" + name + "'",
              [&] { return reader_->getRecord(name, bytes.data_ptr(), n); });
    return bytes;
  }

  std::string path_;
  uint64_t file_size_;
  std::unique_ptr<serialize::PyTorchStreamReader> reader_;
};

PickleDocument unpickle_archive(std::shared_ptr<serialize::ReadAdapterInterface> in, const std::string& path) {
  // Everything LibTorch may throw from here on (an allocation the checks above let through, say) is the file's fault.
  return guarded(path, "cannot read the checkpoint", [&] { return Archive(std::move(in), path).unpickle(); });
}

// ---- From the object graph to named tensors.

bool is_scalar(const PickleValue& v) {
  switch (v.kind) {
    case Kind::None:
    case Kind::Bool:
    case Kind::Int:
    case Kind::Float:
    case Kind::Str:
    case Kind::Bytes:
    case Kind::Global: return true;
    default: return false;
  }
}

// str -> tensor, with scalars allowed beside them (a stray 'version' entry); an empty dict is an empty state dict.
bool is_state_dict(const PickleValue& v) {
  if (v.kind != Kind::Dict) return false;
  bool any_tensor = false;
  for (const auto& [key, value] : v.entries) {
    if (key->kind != Kind::Str) return false;
    if (value->kind == Kind::Tensor)
      any_tensor = true;
    else if (!is_scalar(*value))
      return false;
  }
  return any_tensor || v.entries.empty();
}

// The __dict__ of a pickled nn.Module, or nullptr when `v` is not one.
const PickleValue* module_state(const PickleValue& v) {
  if (v.kind != Kind::Object || !v.state) return nullptr;
  const PickleValue* state = v.state;
  if (state->kind == Kind::Tuple && state->items.size() == 2 && state->items[0]->kind == Kind::Dict)
    state = state->items[0];  // (__dict__, slots)
  if (state->kind != Kind::Dict) return nullptr;
  for (const char* field : {"_parameters", "_buffers", "_modules"}) {
    const PickleValue* f = state->get(field);
    if (!f || f->kind != Kind::Dict) return nullptr;
  }
  return state;
}

std::string short_class_name(const PickleValue& v) {
  const std::string& name = v.class_name();
  return name.substr(name.rfind('.') + 1);
}

std::string source_name(const PickleValue& v) {
  return module_state(v) ? "pickled module " + short_class_name(v) : "state dict";
}

std::string key_text(const PickleValue& key) {
  if (key.kind == Kind::Str) return key.text;
  if (key.kind == Kind::Int) return std::to_string(key.integer);
  return "<" + key.describe() + ">";
}

void add_tensor(PyTorchCheckpoint& out, const std::string& name, const at::Tensor& t) {
  if (!out.tensors.emplace(name, t).second) {
    out.skipped.push_back(name);  // a second entry under the same name
    return;
  }
  out.order.push_back(name);
}

void take_state_dict(const PickleValue& dict, PyTorchCheckpoint& out) {
  for (const auto& [key, value] : dict.entries) {
    if (value->kind == Kind::Tensor)
      add_tensor(out, key->text, value->tensor);
    else
      out.skipped.push_back(key->text);
  }
}

// Module.state_dict() without Python: a module's parameters, then its persistent buffers, then each submodule's
// under "<name>.", depth first. Like Python, a module that appears twice is listed twice; unlike Python, a module
// inside itself (a cycle) is not walked again but listed in `skipped`. Iterative, with the depth and the number
// of visits bounded, so no graph can exhaust the stack or make the walk run away.
constexpr size_t kMaxModuleDepth = 1000;
constexpr size_t kMaxModuleVisits = 1 << 20;

void take_module(const PickleValue& root, const std::string& path, PyTorchCheckpoint& out) {
  struct Frame {
    const PickleValue* module;
    std::string prefix;
    bool leaving;  // pops `module` off the current path once its submodules are done
  };
  std::vector<Frame> todo{{&root, "", false}};
  std::unordered_set<const PickleValue*> on_path;
  size_t visits = 0;
  while (!todo.empty()) {
    Frame frame = std::move(todo.back());
    todo.pop_back();
    if (frame.leaving) {
      on_path.erase(frame.module);
      continue;
    }
    if (on_path.count(frame.module)) {
      out.skipped.push_back(frame.prefix.substr(0, frame.prefix.size() - 1));
      continue;
    }
    if (on_path.size() >= kMaxModuleDepth)
      throw InputError(path, fmt::format("modules nested more than {} deep at '{}'", kMaxModuleDepth, frame.prefix));
    if (++visits > kMaxModuleVisits)
      throw InputError(
          path, fmt::format("more than {} submodules to walk: a module graph that shares too much", kMaxModuleVisits));
    on_path.insert(frame.module);
    const std::string& prefix = frame.prefix;
    const PickleValue* state = module_state(*frame.module);
    for (const auto& [key, value] : state->get("_parameters")->entries) {
      if (value->is_none()) continue;  // as state_dict() does with a parameter set to None
      if (value->kind == Kind::Tensor)
        add_tensor(out, prefix + key_text(*key), value->tensor);
      else
        out.skipped.push_back(prefix + key_text(*key));
    }
    std::unordered_set<std::string> non_persistent;
    if (const PickleValue* names = state->get("_non_persistent_buffers_set"))
      for (const PickleValue* name : names->items)
        if (name->kind == Kind::Str) non_persistent.insert(name->text);
    for (const auto& [key, value] : state->get("_buffers")->entries) {
      if (value->is_none()) continue;
      const std::string name = prefix + key_text(*key);
      if (value->kind == Kind::Tensor && !non_persistent.count(key_text(*key)))
        add_tensor(out, name, value->tensor);
      else
        out.skipped.push_back(name);
    }
    todo.push_back({frame.module, "", true});
    const auto& children = state->get("_modules")->entries;
    for (auto it = children.rbegin(); it != children.rend(); ++it) {
      const PickleValue* child = it->second;
      if (child->is_none()) continue;
      const std::string name = prefix + key_text(*it->first);
      if (module_state(*child))
        todo.push_back({child, name + ".", false});
      else
        out.skipped.push_back(name);
    }
  }
}

// ---- info: scalars as text, small containers as JSON.

constexpr size_t kMaxInfoJsonBytes = 64 << 10;
constexpr int kMaxInfoJsonDepth = 16;

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

std::string number_text(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

// Depth and size are capped, so a shared or cyclic graph ends quickly; false for what JSON cannot hold (tensors,
// objects) or what is too big to be a "small fact".
bool append_json(const PickleValue& v, std::string& out, int depth) {
  if (depth > kMaxInfoJsonDepth || out.size() > kMaxInfoJsonBytes) return false;
  switch (v.kind) {
    case Kind::None: out += "null"; return true;
    case Kind::Bool: out += v.boolean ? "true" : "false"; return true;
    case Kind::Int: out += std::to_string(v.integer); return true;
    case Kind::Float: out += number_text(v.real); return true;
    case Kind::Str:
    case Kind::Global: out += json_string(v.text); return true;
    case Kind::List:
    case Kind::Tuple:
    case Kind::Set: {
      out += '[';
      for (size_t i = 0; i < v.items.size(); ++i) {
        if (i) out += ", ";
        if (!append_json(*v.items[i], out, depth + 1)) return false;
      }
      out += ']';
      return true;
    }
    case Kind::Dict: {
      out += '{';
      for (size_t i = 0; i < v.entries.size(); ++i) {
        const PickleValue& key = *v.entries[i].first;
        if (i) out += ", ";
        if (key.kind == Kind::Str)
          out += json_string(key.text);
        else if (key.kind == Kind::Int || key.kind == Kind::Bool || key.kind == Kind::Float)
          out += '"' +
                 (key.kind == Kind::Int    ? std::to_string(key.integer)
                  : key.kind == Kind::Bool ? std::string(key.boolean ? "true" : "false")
                                           : number_text(key.real)) +
                 '"';
        else
          return false;
        out += ": ";
        if (!append_json(*v.entries[i].second, out, depth + 1)) return false;
      }
      out += '}';
      return true;
    }
    default: return false;
  }
}

std::optional<std::string> info_text(const PickleValue& v) {
  switch (v.kind) {
    case Kind::None:
    case Kind::Bytes: return std::nullopt;
    case Kind::Bool: return std::string(v.boolean ? "true" : "false");
    case Kind::Int: return std::to_string(v.integer);
    case Kind::Float: return number_text(v.real);
    case Kind::Str:
    case Kind::Global: return v.text;
    default: {
      std::string json;
      if (append_json(v, json, 0) && json.size() <= kMaxInfoJsonBytes) return json;
      return std::nullopt;
    }
  }
}

// What an Ultralytics or YOLOv5 model object knows beyond its weights.
void take_module_info(const PickleValue& module, PyTorchCheckpoint& out) {
  const PickleValue* state = module_state(module);
  const PickleValue* yaml = state->get("yaml");
  for (const char* field : {"names", "yaml"})
    if (const PickleValue* v = state->get(field))
      if (auto text = info_text(*v)) out.info[field] = *text;
  const PickleValue* nc = state->get("nc");
  if ((!nc || nc->kind != Kind::Int) && yaml) nc = yaml->get("nc");
  if (nc && nc->kind == Kind::Int) out.info["nc"] = std::to_string(nc->integer);
  // The detector's strides are a plain tensor attribute, not a buffer, so state_dict() leaves them out.
  if (const PickleValue* stride = state->get("stride");
      stride && stride->kind == Kind::Tensor && stride->tensor.numel() <= 16) {
    std::string json = "[";
    const at::Tensor values = stride->tensor.to(at::kDouble).contiguous();
    for (int64_t i = 0; i < values.numel(); ++i) json += (i ? ", " : "") + number_text(values.data_ptr<double>()[i]);
    out.info["stride"] = json + "]";
  }
}

void take(const PickleValue& v, const std::string& path, PyTorchCheckpoint& out) {
  if (module_state(v)) {
    take_module(v, path, out);
    take_module_info(v, out);
  } else {
    take_state_dict(v, out);
  }
}

void strip_data_parallel_prefix(PyTorchCheckpoint& out) {
  const std::string prefix = "module.";
  if (out.order.empty()) return;
  for (const auto& name : out.order)
    if (name.rfind(prefix, 0) != 0) return;
  std::map<std::string, at::Tensor> renamed;
  for (auto& name : out.order) {
    at::Tensor t = out.tensors.at(name);
    name = name.substr(prefix.size());
    renamed.emplace(name, std::move(t));
  }
  out.tensors = std::move(renamed);
  for (auto& name : out.skipped)
    if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
}

}  // namespace

PyTorchCheckpoint checkpoint_from_pickle(const PickleValue& root, const std::string& path) {
  PyTorchCheckpoint out;
  if (module_state(root) || is_state_dict(root)) {
    out.layout = source_name(root);
    take(root, path, out);
  } else if (root.kind == Kind::Dict) {
    const PickleValue* chosen = nullptr;
    std::string chosen_key;
    for (const char* key : {"ema", "model_ema", "model", "state_dict"}) {
      const PickleValue* v = root.get(key);
      if (v && (module_state(*v) || is_state_dict(*v))) {
        chosen = v;
        chosen_key = key;
        break;
      }
    }
    if (!chosen) {
      std::string keys;
      for (size_t i = 0; i < root.entries.size() && i < 12; ++i)
        keys += (i ? ", '" : "'") + key_text(*root.entries[i].first) + "'";
      if (root.entries.size() > 12) keys += ", ...";
      throw InputError(
          path, "no state dict in data.pkl: a dict with keys [" + keys +
                    "], and none of 'ema', 'model_ema', 'model', 'state_dict' holds a state dict or a pickled module");
    }
    out.layout = "{'" + chosen_key + "': " + source_name(*chosen) + "}";
    for (const auto& [key, value] : root.entries)
      if (key->kind == Kind::Str && value != chosen)
        if (auto text = info_text(*value)) out.info[key->text] = *text;
    take(*chosen, path, out);
  } else {
    throw InputError(path, "data.pkl holds a " + root.describe() +
                               ", not a state dict, a dict with 'model', 'state_dict' or 'ema', or a pickled module");
  }
  strip_data_parallel_prefix(out);
  // Ultralytics and YOLOv5 store half precision; revkit computes in float32.
  for (auto& [name, t] : out.tensors)
    if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) t = t.to(at::kFloat);
  return out;
}

PickleDocument read_pytorch_pickle(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw InputError(path, "cannot open file");
  if (S_ISDIR(st.st_mode)) throw InputError(path, "is a directory, not a checkpoint");
  std::shared_ptr<serialize::ReadAdapterInterface> in =
      guarded(path, "cannot open file", [&] { return std::make_shared<serialize::FileAdapter>(path); });
  return unpickle_archive(std::move(in), path);
}

PyTorchCheckpoint read_pytorch_checkpoint(const std::string& path) {
  const PickleDocument doc = read_pytorch_pickle(path);
  return guarded(path, "cannot read the checkpoint", [&] { return checkpoint_from_pickle(doc.root(), path); });
}

PyTorchCheckpoint read_pytorch_checkpoint(const void* data, size_t size, const std::string& name) {
  const PickleDocument doc = unpickle_archive(std::make_shared<BoundedMemoryAdapter>(data, size), name);
  return guarded(name, "cannot read the checkpoint", [&] { return checkpoint_from_pickle(doc.root(), name); });
}

}  // namespace revkit
