#pragma once
// A reader of Python pickles as torch.save writes them (protocols 2 to 5) that never imports or calls anything:
// it builds a tree of plain values. Classes stay names (an instance is an Object: its class, its constructor
// arguments and the state BUILD gave it); a short list of known, harmless callables is evaluated by hand (tensor
// rebuilding, OrderedDict, set, torch.device, numpy scalars, ...); any other callable is an error. The reader is
// iterative, so a deeply nested pickle cannot overflow the C++ stack.
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace revkit {

// One node of an unpickled object graph. Nodes point at each other (a graph may share nodes, or even hold a
// cycle: a list that contains itself); they all live in the PickleDocument that made them.
struct PickleValue {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Set, Dict, Tensor, Storage, Global, Object };
  Kind kind = Kind::None;
  bool boolean = false;                   // Bool
  int64_t integer = 0;                    // Int
  double real = 0;                        // Float
  std::string text;                       // Str (UTF-8 as stored), Bytes; Global: "module.name"
  std::vector<const PickleValue*> items;  // List, Tuple, Set (in pickle order); Object: what APPEND(S) added
  std::vector<std::pair<const PickleValue*, const PickleValue*>> entries;  // Dict (insertion order); Object: SETITEM(S)
  at::Tensor tensor;  // Tensor: a view on its storage's bytes; Storage: the bytes, a 1-d uint8 tensor
  c10::ScalarType storage_dtype = c10::ScalarType::Byte;  // Storage: the element type its pickle declared
  const PickleValue* cls = nullptr;                       // Object: its class, a Global
  std::vector<const PickleValue*> args;                   // Object: the constructor arguments
  const PickleValue* state = nullptr;  // what BUILD set (an Object's __dict__ or __setstate__ argument)

  bool is(Kind k) const { return kind == k; }
  bool is_none() const { return kind == Kind::None; }
  // Dict (or Object with SETITEMS): the value under a str key, or nullptr.
  const PickleValue* get(const std::string& key) const;
  // Object: its class's "module.name"; empty for anything else.
  const std::string& class_name() const;
  // For messages: "int", "str 'abc'", "tensor [2, 3] Float", "object of class 'models.common.Conv'", ...
  std::string describe() const;
};

// Owns every node of one unpickled graph; root() is what the pickle's STOP returned. Moving keeps node
// addresses, copying is not possible.
class PickleDocument {
 public:
  PickleDocument() = default;
  PickleDocument(PickleDocument&&) = default;
  PickleDocument& operator=(PickleDocument&&) = default;
  PickleDocument(const PickleDocument&) = delete;
  PickleDocument& operator=(const PickleDocument&) = delete;

  const PickleValue& root() const { return *root_; }
  size_t node_count() const { return nodes_.size(); }

 private:
  friend class Unpickler;
  std::deque<PickleValue> nodes_;
  const PickleValue* root_ = nullptr;
};

// Supplies a storage that a persistent id ('storage', <type>, key, location, numel) names: `numel` elements of
// `dtype`, as a 1-d uint8 CPU tensor of numel * element size bytes. Called once per key; it throws InputError
// when the archive does not have them.
using PickleStorageLoader = std::function<at::Tensor(const std::string& key, c10::ScalarType dtype, int64_t numel)>;

struct UnpickleOptions {
  std::string file;                  // the file messages name: "<file>: <problem> in <record> at byte N"
  std::string record = "data.pkl";   // the pickle's name inside that file
  PickleStorageLoader load_storage;  // without one, a persistent id is an error
};

// Throws InputError for anything it cannot read: a truncated pickle, an unknown opcode, a callable outside the
// known list, a tensor that does not fit its storage, ... always with the byte offset of the opcode at fault.
PickleDocument unpickle(const void* data, size_t size, const UnpickleOptions& options);

}  // namespace revkit
