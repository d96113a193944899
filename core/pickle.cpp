#include "core/pickle.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "core/error.h"

namespace revkit {

using Kind = PickleValue::Kind;

namespace {

// The opcodes this reader knows (pickletools' names), protocol 0 to 5.
enum Opcode : uint8_t {
  MARK = '(',
  STOP = '.',
  POP = '0',
  POP_MARK = '1',
  DUP = '2',
  FLOAT = 'F',
  INT = 'I',
  BININT = 'J',
  BININT1 = 'K',
  LONG = 'L',
  BININT2 = 'M',
  NONE = 'N',
  PERSID = 'P',
  BINPERSID = 'Q',
  REDUCE = 'R',
  STRING = 'S',
  BINSTRING = 'T',
  SHORT_BINSTRING = 'U',
  UNICODE = 'V',
  BINUNICODE = 'X',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  DICT = 'd',
  EMPTY_DICT = '}',
  APPENDS = 'e',
  GET = 'g',
  BINGET = 'h',
  INST = 'i',
  LONG_BINGET = 'j',
  LIST = 'l',
  EMPTY_LIST = ']',
  OBJ = 'o',
  PUT = 'p',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  EMPTY_TUPLE = ')',
  SETITEMS = 'u',
  BINFLOAT = 'G',
  PROTO = 0x80,
  NEWOBJ = 0x81,
  EXT1 = 0x82,
  EXT2 = 0x83,
  EXT4 = 0x84,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  EMPTY_SET = 0x8f,
  ADDITEMS = 0x90,
  FROZENSET = 0x91,
  NEWOBJ_EX = 0x92,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
  BYTEARRAY8 = 0x96,
  NEXT_BUFFER = 0x97,
  READONLY_BUFFER = 0x98,
};

const char* opcode_name(uint8_t op) {
  switch (op) {
    case MARK: return "MARK";
    case STOP: return "STOP";
    case POP: return "POP";
    case POP_MARK: return "POP_MARK";
    case DUP: return "DUP";
    case FLOAT: return "FLOAT";
    case INT: return "INT";
    case BININT: return "BININT";
    case BININT1: return "BININT1";
    case LONG: return "LONG";
    case BININT2: return "BININT2";
    case NONE: return "NONE";
    case PERSID: return "PERSID";
    case BINPERSID: return "BINPERSID";
    case REDUCE: return "REDUCE";
    case STRING: return "STRING";
    case BINSTRING: return "BINSTRING";
    case SHORT_BINSTRING: return "SHORT_BINSTRING";
    case UNICODE: return "UNICODE";
    case BINUNICODE: return "BINUNICODE";
    case APPEND: return "APPEND";
    case BUILD: return "BUILD";
    case GLOBAL: return "GLOBAL";
    case DICT: return "DICT";
    case EMPTY_DICT: return "EMPTY_DICT";
    case APPENDS: return "APPENDS";
    case GET: return "GET";
    case BINGET: return "BINGET";
    case INST: return "INST";
    case LONG_BINGET: return "LONG_BINGET";
    case LIST: return "LIST";
    case EMPTY_LIST: return "EMPTY_LIST";
    case OBJ: return "OBJ";
    case PUT: return "PUT";
    case BINPUT: return "BINPUT";
    case LONG_BINPUT: return "LONG_BINPUT";
    case SETITEM: return "SETITEM";
    case TUPLE: return "TUPLE";
    case EMPTY_TUPLE: return "EMPTY_TUPLE";
    case SETITEMS: return "SETITEMS";
    case BINFLOAT: return "BINFLOAT";
    case PROTO: return "PROTO";
    case NEWOBJ: return "NEWOBJ";
    case EXT1: return "EXT1";
    case EXT2: return "EXT2";
    case EXT4: return "EXT4";
    case TUPLE1: return "TUPLE1";
    case TUPLE2: return "TUPLE2";
    case TUPLE3: return "TUPLE3";
    case NEWTRUE: return "NEWTRUE";
    case NEWFALSE: return "NEWFALSE";
    case LONG1: return "LONG1";
    case LONG4: return "LONG4";
    case BINBYTES: return "BINBYTES";
    case SHORT_BINBYTES: return "SHORT_BINBYTES";
    case SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case BINUNICODE8: return "BINUNICODE8";
    case BINBYTES8: return "BINBYTES8";
    case EMPTY_SET: return "EMPTY_SET";
    case ADDITEMS: return "ADDITEMS";
    case FROZENSET: return "FROZENSET";
    case NEWOBJ_EX: return "NEWOBJ_EX";
    case STACK_GLOBAL: return "STACK_GLOBAL";
    case MEMOIZE: return "MEMOIZE";
    case FRAME: return "FRAME";
    case BYTEARRAY8: return "BYTEARRAY8";
    case NEXT_BUFFER: return "NEXT_BUFFER";
    case READONLY_BUFFER: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

constexpr size_t kMaxTensorDims = 64;
constexpr size_t kMaxKeyFingerprintBytes = 1 << 20;  // a dict key's canonical text; real keys are short
// A memoized list can be copied again and again (set(l), OrderedDict(l), ...) for a few bytes each: the work and
// memory such copies may take is capped at a multiple of the input's size.
constexpr size_t kExpansionFactor = 8;
constexpr size_t kExpansionSlack = 1 << 20;
constexpr size_t kTensorCost = 64;  // what one tensor object costs, in the same units

// torch.FloatStorage and friends (torch.cuda.* in checkpoints saved from a GPU by old PyTorch versions).
bool storage_class_dtype(const std::string& qualified, c10::ScalarType& dtype) {
  static const std::unordered_map<std::string, c10::ScalarType> by_name = {
      {"DoubleStorage", at::kDouble},     {"FloatStorage", at::kFloat}, {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong},   {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},       {"CharStorage", at::kChar},   {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool},         {"UntypedStorage", at::kByte}};
  std::string name;
  for (const char* module : {"torch.", "torch.cuda.", "torch.storage."})
    if (qualified.rfind(module, 0) == 0 && qualified.find('.', std::strlen(module)) == std::string::npos)
      name = qualified.substr(std::strlen(module));
  auto it = by_name.find(name);
  if (it == by_name.end()) return false;
  dtype = it->second;
  return true;
}

// torch.float16 and friends, as globals (dtype arguments, or values in their own right).
bool dtype_global(const std::string& qualified, c10::ScalarType& dtype) {
  static const std::unordered_map<std::string, c10::ScalarType> by_name = {
      {"torch.float64", at::kDouble},    {"torch.double", at::kDouble}, {"torch.float32", at::kFloat},
      {"torch.float", at::kFloat},       {"torch.float16", at::kHalf},  {"torch.half", at::kHalf},
      {"torch.bfloat16", at::kBFloat16}, {"torch.int64", at::kLong},    {"torch.long", at::kLong},
      {"torch.int32", at::kInt},         {"torch.int", at::kInt},       {"torch.int16", at::kShort},
      {"torch.short", at::kShort},       {"torch.int8", at::kChar},     {"torch.uint8", at::kByte},
      {"torch.bool", at::kBool},         {"torch.uint16", at::kUInt16}, {"torch.uint32", at::kUInt32},
      {"torch.uint64", at::kUInt64}};
  auto it = by_name.find(qualified);
  if (it == by_name.end()) return false;
  dtype = it->second;
  return true;
}

// Python 2 names that protocol 2 pickles still carry (fix_imports), and a module torch renamed.
std::string python3_module(const std::string& module) {
  if (module == "__builtin__") return "builtins";
  if (module == "copy_reg") return "copyreg";
  if (module == "torch.tensor") return "torch._tensor";
  return module;
}

bool checked_mul(int64_t a, int64_t b, int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
bool checked_add(int64_t a, int64_t b, int64_t& out) { return !__builtin_add_overflow(a, b, &out); }

}  // namespace

const PickleValue* PickleValue::get(const std::string& key) const {
  for (const auto& [k, v] : entries)
    if (k->kind == Kind::Str && k->text == key) return v;
  return nullptr;
}

const std::string& PickleValue::class_name() const {
  static const std::string none;
  return kind == Kind::Object && cls ? cls->text : none;
}

std::string PickleValue::describe() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return boolean ? "bool True" : "bool False";
    case Kind::Int: return fmt::format("int {}", integer);
    case Kind::Float: return fmt::format("float {}", real);
    case Kind::Str: return text.size() <= 40 ? "str '" + text + "'" : "str '" + text.substr(0, 37) + "...'";
    case Kind::Bytes: return fmt::format("bytes of length {}", text.size());
    case Kind::List: return fmt::format("list of {}", items.size());
    case Kind::Tuple: return fmt::format("tuple of {}", items.size());
    case Kind::Set: return fmt::format("set of {}", items.size());
    case Kind::Dict: return fmt::format("dict of {}", entries.size());
    case Kind::Tensor: return fmt::format("tensor {} {}", tensor.sizes(), c10::toString(tensor.scalar_type()));
    case Kind::Storage: return "storage '" + text + "'";
    case Kind::Global: return "global '" + text + "'";
    case Kind::Object: return "object of class '" + class_name() + "'";
  }
  return "?";
}

// Holds the state of one unpickling: the input, the value stack, the MARK stack and the memo.
class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const UnpickleOptions& options)
      : data_(data), size_(size), options_(options) {}

  PickleDocument run();

 private:
  using Args = std::vector<const PickleValue*>;

  [[noreturn]] void fail(const std::string& problem) const {
    const std::string where = options_.record.empty() ? "" : " in " + options_.record;
    throw InputError(options_.file, fmt::format("{}{} at byte {}", problem, where, opcode_at_));
  }

  // Input.
  const uint8_t* take(uint64_t n) {
    if (n > size_ - pos_) fail(fmt::format("truncated: {} needs {} more bytes, {} left", op_name_, n, size_ - pos_));
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t read_le(size_t n) {
    const uint8_t* p = take(n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p[i];
    return v;
  }
  std::string read_bytes(uint64_t n) {
    const uint8_t* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  std::string read_line() {
    const void* end = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (!end) fail(fmt::format("truncated: {} has no end of line", op_name_));
    const size_t n = static_cast<const uint8_t*>(end) - (data_ + pos_);
    std::string line = read_bytes(n);
    ++pos_;
    return line;
  }

  // Nodes and stacks.
  PickleValue* make(Kind kind) {
    doc_.nodes_.emplace_back();
    doc_.nodes_.back().kind = kind;
    return &doc_.nodes_.back();
  }
  size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  PickleValue* pop() {
    if (stack_.size() <= fence()) fail(fmt::format("stack underflow: {} needs a value", op_name_));
    PickleValue* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PickleValue* top() {
    if (stack_.size() <= fence()) fail(fmt::format("stack underflow: {} needs a value", op_name_));
    return stack_.back();
  }
  Args pop_mark() {
    if (marks_.empty()) fail(fmt::format("MARK stack underflow: {} without a MARK", op_name_));
    const size_t at = marks_.back();
    marks_.pop_back();
    Args items(stack_.begin() + static_cast<std::ptrdiff_t>(at), stack_.end());
    stack_.resize(at);
    return items;
  }
  void push(PickleValue* v) { stack_.push_back(v); }

  PickleValue* make_int(int64_t v) {
    PickleValue* n = make(Kind::Int);
    n->integer = v;
    return n;
  }
  // Counts work and memory that is not bounded by the input alone (copies of memoized values).
  void charge(size_t units) {
    spent_ += units;
    if (spent_ > kExpansionFactor * size_ + kExpansionSlack)
      fail(fmt::format("the pickle expands to more than {} times its size", kExpansionFactor));
  }
  Args copy_items(const Args& items) {
    charge(items.size());
    return items;
  }
  PickleValue* make_text(Kind kind, std::string text) {
    charge(text.size());
    PickleValue* n = make(kind);
    n->text = std::move(text);
    return n;
  }
  PickleValue* make_long(uint64_t n_bytes);
  PickleValue* make_global(const std::string& module, const std::string& name);

  void memo_put(uint64_t index);
  void memo_get(uint64_t index);

  std::string key_fingerprint(const PickleValue* key);
  void set_item(PickleValue* target, const PickleValue* key, const PickleValue* value);
  void add_items(PickleValue* target, const Args& items);

  PickleValue* persistent_load(const PickleValue* pid);
  PickleValue* call(const PickleValue* callable, const PickleValue* args, bool nested = false);
  PickleValue* new_object(const PickleValue* cls, Args args);
  PickleValue* rebuild_tensor(const std::string& fn, const Args& a, bool with_dtype);
  PickleValue* numpy_scalar(const Args& a);
  std::vector<int64_t> int_tuple(const PickleValue* v, const std::string& what);
  const std::string& str_arg(const PickleValue* v, const std::string& what);
  std::string latin1_bytes(const std::string& utf8);

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t opcode_at_ = 0;
  const char* op_name_ = "";
  const UnpickleOptions& options_;
  PickleDocument doc_;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
  // Per dict (or dict-like object): canonical key text -> index in entries, so SETITEM replaces like Python.
  std::unordered_map<const PickleValue*, std::unordered_map<std::string, size_t>> keys_;
  std::unordered_map<std::string, PickleValue*> storages_;
  size_t spent_ = 0;
};

PickleValue* Unpickler::make_long(uint64_t n_bytes) {
  if (n_bytes > 8) fail(fmt::format("integer of {} bytes does not fit 64 bits", n_bytes));
  const uint8_t* p = take(n_bytes);
  uint64_t v = 0;
  for (size_t i = n_bytes; i-- > 0;) v = (v << 8) | p[i];
  if (n_bytes > 0 && n_bytes < 8 && (p[n_bytes - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n_bytes);  // sign
  return make_int(static_cast<int64_t>(v));
}

PickleValue* Unpickler::make_global(const std::string& module, const std::string& name) {
  if (module.empty() || name.empty()) fail(fmt::format("{} with an empty module or name", op_name_));
  return make_text(Kind::Global, python3_module(module) + "." + name);
}

void Unpickler::memo_put(uint64_t index) {
  // Picklers number memo entries from 0 up, one per value, so an index beyond the input's size is a lie.
  if (index > size_) fail(fmt::format("memo index {} is out of range for a pickle of {} bytes", index, size_));
  memo_[index] = top();
}

void Unpickler::memo_get(uint64_t index) {
  auto it = memo_.find(index);
  if (it == memo_.end()) fail(fmt::format("memo index {} was never set", index));
  push(it->second);
}

// Equal keys (by Python's rules, roughly: 1 == 1.0 == True, tuples by value, objects by identity) give equal texts.
std::string Unpickler::key_fingerprint(const PickleValue* key) {
  std::string out;
  std::vector<const PickleValue*> todo{key};  // nullptr closes a tuple
  while (!todo.empty()) {
    const PickleValue* v = todo.back();
    todo.pop_back();
    if (!v) {
      out += ')';
      continue;
    }
    switch (v->kind) {
      case Kind::None: out += 'N'; break;
      case Kind::Bool: out += v->boolean ? "i1;" : "i0;"; break;
      case Kind::Int: out += fmt::format("i{};", v->integer); break;
      case Kind::Float:
        if (std::isfinite(v->real) && std::trunc(v->real) == v->real && std::fabs(v->real) < 9.2e18)
          out += fmt::format("i{};", static_cast<int64_t>(v->real));
        else
          out += fmt::format("f{};", v->real);
        break;
      case Kind::Str: out += fmt::format("s{}:", v->text.size()) + v->text; break;
      case Kind::Bytes: out += fmt::format("b{}:", v->text.size()) + v->text; break;
      case Kind::Global: out += fmt::format("g{}:", v->text.size()) + v->text; break;
      case Kind::Tuple:
        out += '(';
        todo.push_back(nullptr);
        for (auto it = v->items.rbegin(); it != v->items.rend(); ++it) todo.push_back(*it);
        break;
      case Kind::List:
      case Kind::Dict: fail(fmt::format("unhashable dict key: a {}", v->describe()));
      default: out += fmt::format("@{};", static_cast<const void*>(v)); break;  // hashed by identity
    }
    if (out.size() > kMaxKeyFingerprintBytes) fail("dict key is too large");
  }
  charge(out.size());
  return out;
}

void Unpickler::set_item(PickleValue* target, const PickleValue* key, const PickleValue* value) {
  if (target->kind != Kind::Dict && target->kind != Kind::Object)
    fail(fmt::format("{} on a {}, not a dict", op_name_, target->describe()));
  auto& index = keys_[target];
  auto [it, inserted] = index.emplace(key_fingerprint(key), target->entries.size());
  if (inserted)
    target->entries.emplace_back(key, value);
  else
    target->entries[it->second].second = value;
}

void Unpickler::add_items(PickleValue* target, const Args& items) {
  if (target->kind != Kind::List && target->kind != Kind::Set && target->kind != Kind::Object)
    fail(fmt::format("{} on a {}, not a list", op_name_, target->describe()));
  target->items.insert(target->items.end(), items.begin(), items.end());
}

const std::string& Unpickler::str_arg(const PickleValue* v, const std::string& what) {
  if (v->kind != Kind::Str && v->kind != Kind::Bytes) fail(fmt::format("{} is a {}, not a str", what, v->describe()));
  return v->text;
}

std::vector<int64_t> Unpickler::int_tuple(const PickleValue* v, const std::string& what) {
  if (v->kind != Kind::Tuple && v->kind != Kind::List)
    fail(fmt::format("{} is a {}, not a tuple", what, v->describe()));
  if (v->items.size() > kMaxTensorDims)
    fail(fmt::format("{} has {} dimensions, more than {}", what, v->items.size(), kMaxTensorDims));
  std::vector<int64_t> out;
  for (const PickleValue* item : v->items) {
    if (item->kind != Kind::Int || item->integer < 0)
      fail(fmt::format("{} has an entry that is a {}, not a size", what, item->describe()));
    out.push_back(item->integer);
  }
  return out;
}

// Python's "latin1" codec: every code point below 256 becomes one byte (how protocol 2 writes bytes objects).
std::string Unpickler::latin1_bytes(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      i += 1;
    } else if ((c & 0xe0) == 0xc0 && i + 1 < utf8.size() && (static_cast<unsigned char>(utf8[i + 1]) & 0xc0) == 0x80) {
      const unsigned code = ((c & 0x1fu) << 6) | (static_cast<unsigned char>(utf8[i + 1]) & 0x3fu);
      if (code > 0xff) fail("_codecs.encode: a character outside latin-1");
      out += static_cast<char>(code);
      i += 2;
    } else {
      fail("_codecs.encode: text that is not latin-1");
    }
  }
  return out;
}

PickleValue* Unpickler::persistent_load(const PickleValue* pid) {
  if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->text != "storage" ||
      (pid->items[0]->kind != Kind::Str && pid->items[0]->kind != Kind::Bytes))
    fail(fmt::format("persistent id is a {}, not ('storage', type, key, location, numel)", pid->describe()));
  const PickleValue* type = pid->items[1];
  c10::ScalarType dtype;
  if (type->kind != Kind::Global || !storage_class_dtype(type->text, dtype))
    fail(fmt::format("unknown storage type: a {}", type->describe()));
  const std::string& key = str_arg(pid->items[2], "the storage key");
  const PickleValue* numel = pid->items[4];
  if (numel->kind != Kind::Int || numel->integer < 0)
    fail(fmt::format("storage '{}' has a size that is a {}", key, numel->describe()));
  if (auto it = storages_.find(key); it != storages_.end()) return it->second;
  if (!options_.load_storage) fail("a tensor storage, but no archive to read it from");
  PickleValue* storage = make_text(Kind::Storage, key);
  storage->tensor = options_.load_storage(key, dtype, numel->integer);
  storage->storage_dtype = dtype;
  storages_.emplace(key, storage);
  return storage;
}

// torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
// and _rebuild_tensor_v3 (the same, then dtype: its storage is untyped bytes). Gradients and hooks do not matter
// for weights; the tensor is a view on the shared storage, after checking that it fits.
PickleValue* Unpickler::rebuild_tensor(const std::string& fn, const Args& a, bool with_dtype) {
  const size_t need = with_dtype ? 7 : 4;
  if (a.size() < need) fail(fmt::format("'{}' takes at least {} arguments, got {}", fn, need, a.size()));
  const PickleValue* storage = a[0];
  if (storage->kind != Kind::Storage) fail(fmt::format("'{}' of a {}, not a storage", fn, storage->describe()));
  if (a[1]->kind != Kind::Int || a[1]->integer < 0)
    fail(fmt::format("'{}': storage offset is a {}", fn, a[1]->describe()));
  const int64_t offset = a[1]->integer;
  const std::vector<int64_t> sizes = int_tuple(a[2], "tensor size");
  const std::vector<int64_t> strides = int_tuple(a[3], "tensor stride");
  if (sizes.size() != strides.size())
    fail(fmt::format("tensor size {} and stride {} differ in length", sizes, strides));
  c10::ScalarType dtype = storage->storage_dtype;
  if (with_dtype && (a[6]->kind != Kind::Global || !dtype_global(a[6]->text, dtype)))
    fail(fmt::format("'{}': unsupported dtype, a {}", fn, a[6]->describe()));

  const int64_t element_size = static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t available = storage->tensor.numel() / element_size;
  int64_t numel = 1, extent = 1;
  bool fits = true;
  for (size_t d = 0; d < sizes.size(); ++d) {
    int64_t reach = 0;
    fits = fits && checked_mul(numel, sizes[d], numel);
    if (sizes[d] > 0) fits = fits && checked_mul(sizes[d] - 1, strides[d], reach) && checked_add(extent, reach, extent);
  }
  if (fits && numel == 0) extent = 0;
  if (!fits || numel > available)
    fail(fmt::format("tensor of size {} has more elements than its storage '{}' holds ({} of {})", sizes, storage->text,
                     available, c10::toString(dtype)));
  if (offset > available || extent > available - offset)
    fail(fmt::format(
        "tensor of size {} and stride {} at offset {} needs {} elements, but its storage '{}' holds {} of {}", sizes,
        strides, offset, offset + extent, storage->text, available, c10::toString(dtype)));
  charge(kTensorCost);
  PickleValue* out = make(Kind::Tensor);
  out->tensor = at::empty({0}, at::TensorOptions().dtype(dtype));
  out->tensor.set_(storage->tensor.storage(), offset, sizes, strides);
  return out;
}

// numpy.core.multiarray.scalar(dtype, bytes): a numpy number (Ultralytics' best_fitness), decoded by hand.
PickleValue* Unpickler::numpy_scalar(const Args& a) {
  if (a.size() != 2 || a[0]->class_name() != "numpy.dtype" || a[0]->args.empty() || a[1]->kind != Kind::Bytes)
    fail("numpy scalar without a numpy.dtype and its bytes");
  const std::string& code = str_arg(a[0]->args[0], "numpy dtype");
  const PickleValue* state = a[0]->state;
  if (state && state->kind == Kind::Tuple && state->items.size() > 1 && state->items[1]->kind == Kind::Str &&
      state->items[1]->text == ">")
    fail("big-endian numpy scalar");
  const std::string& bytes = a[1]->text;
  auto expect_size = [&](size_t n) {
    if (bytes.size() != n) fail(fmt::format("numpy scalar of dtype '{}' has {} bytes, not {}", code, bytes.size(), n));
  };
  auto little_endian = [&](size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(bytes[i]);
    return v;
  };
  if (code == "f8" || code == "f4") {
    PickleValue* out = make(Kind::Float);
    if (code == "f8") {
      expect_size(8);
      const uint64_t bits = little_endian(8);
      std::memcpy(&out->real, &bits, 8);
    } else {
      expect_size(4);
      const auto bits = static_cast<uint32_t>(little_endian(4));
      float f;
      std::memcpy(&f, &bits, 4);
      out->real = f;
    }
    return out;
  }
  if (code == "i8" || code == "i4" || code == "i2" || code == "i1" || code == "u1" || code == "u2" || code == "u4") {
    const size_t n = static_cast<size_t>(code[1] - '0');
    expect_size(n);
    uint64_t v = little_endian(n);
    if (code[0] == 'i' && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
    return make_int(static_cast<int64_t>(v));
  }
  if (code == "b1") {
    expect_size(1);
    PickleValue* out = make(Kind::Bool);
    out->boolean = bytes[0] != 0;
    return out;
  }
  fail(fmt::format("numpy scalar of unsupported dtype '{}'", code));
}

PickleValue* Unpickler::new_object(const PickleValue* cls, Args args) {
  if (cls->kind != Kind::Global) fail(fmt::format("{} of a {}, not a class", op_name_, cls->describe()));
  const std::string& name = cls->text;
  if (name == "collections.OrderedDict" || name == "builtins.dict" || name == "collections.defaultdict")
    return make(Kind::Dict);
  if (name == "builtins.set" || name == "builtins.frozenset") return make(Kind::Set);
  PickleValue* out = make(Kind::Object);
  out->cls = cls;
  out->args = std::move(args);
  return out;
}

// REDUCE: only callables whose effect this reader knows and can reproduce without running anything.
PickleValue* Unpickler::call(const PickleValue* callable, const PickleValue* args, bool nested) {
  if (callable->kind != Kind::Global) fail(fmt::format("REDUCE of a {}, not a global", callable->describe()));
  if (args->kind != Kind::Tuple) fail(fmt::format("REDUCE arguments are a {}, not a tuple", args->describe()));
  const std::string& fn = callable->text;
  const Args& a = args->items;
  auto arity = [&](size_t low, size_t high) {
    if (a.size() < low || a.size() > high)
      fail(low == high ? fmt::format("'{}' takes {} arguments, got {}", fn, low, a.size())
                       : fmt::format("'{}' takes {} to {} arguments, got {}", fn, low, high, a.size()));
  };

  if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor")
    return rebuild_tensor(fn, a, false);
  if (fn == "torch._utils._rebuild_tensor_v3") return rebuild_tensor(fn, a, true);
  if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") {
    arity(fn == "torch._utils._rebuild_parameter" ? 3 : 4, 4);
    if (a[0]->kind != Kind::Tensor) fail(fmt::format("'{}' of a {}, not a tensor", fn, a[0]->describe()));
    return const_cast<PickleValue*>(a[0]);  // a Parameter is its data, for weights
  }
  if (fn == "torch._tensor._rebuild_from_type_v2") {  // a Tensor subclass: rebuild the tensor, forget the class
    arity(4, 4);
    if (nested) fail("nested '" + fn + "'");
    const PickleValue* inner = a[0];
    if (inner->kind != Kind::Global || inner->text.rfind("torch._utils._rebuild_", 0) != 0)
      fail(fmt::format("'{}' of a {}", fn, inner->describe()));
    return call(inner, a[2], true);
  }
  if (fn == "collections.OrderedDict" || fn == "builtins.dict" || fn == "collections.defaultdict") {
    arity(0, 2);
    PickleValue* dict = make(Kind::Dict);
    const PickleValue* items =
        fn == "collections.defaultdict" ? (a.size() > 1 ? a[1] : nullptr) : (a.empty() ? nullptr : a[0]);
    if (items && (items->kind == Kind::Dict)) {
      for (const auto& [k, v] : items->entries) set_item(dict, k, v);
    } else if (items && (items->kind == Kind::List || items->kind == Kind::Tuple)) {
      for (const PickleValue* pair : items->items) {
        if ((pair->kind != Kind::Tuple && pair->kind != Kind::List) || pair->items.size() != 2)
          fail(fmt::format("'{}' of an item that is a {}, not a pair", fn, pair->describe()));
        set_item(dict, pair->items[0], pair->items[1]);
      }
    } else if (items && !items->is_none() && fn != "collections.defaultdict") {
      fail(fmt::format("'{}' of a {}", fn, items->describe()));
    }
    return dict;
  }
  if (fn == "builtins.set" || fn == "builtins.frozenset") {
    arity(0, 1);
    PickleValue* set = make(Kind::Set);
    if (!a.empty()) {
      if (a[0]->kind != Kind::List && a[0]->kind != Kind::Tuple && a[0]->kind != Kind::Set)
        fail(fmt::format("'{}' of a {}", fn, a[0]->describe()));
      set->items = copy_items(a[0]->items);
    }
    return set;
  }
  if (fn == "builtins.bytes" || fn == "builtins.bytearray" || fn == "_codecs.encode") {
    arity(fn == "_codecs.encode" ? 1 : 0, 2);
    if (a.empty()) return make(Kind::Bytes);
    if (a[0]->kind == Kind::Bytes && a.size() == 1) return make_text(Kind::Bytes, a[0]->text);
    const std::string& text = str_arg(a[0], "'" + fn + "' argument");
    const std::string encoding = a.size() > 1 ? str_arg(a[1], "encoding") : "utf-8";
    if (encoding == "latin1" || encoding == "latin-1" || encoding == "iso-8859-1")
      return make_text(Kind::Bytes, latin1_bytes(text));
    if (encoding == "utf-8" || encoding == "utf8") return make_text(Kind::Bytes, text);
    fail(fmt::format("'{}' with unsupported encoding '{}'", fn, encoding));
  }
  if (fn == "copyreg._reconstructor") {  // protocol 0/1 form of "a new instance of this class"
    arity(3, 3);
    return new_object(a[0], {a[1], a[2]});
  }
  if (fn == "copyreg.__newobj__") {
    arity(1, std::numeric_limits<size_t>::max());
    return new_object(a[0], copy_items(Args(a.begin() + 1, a.end())));
  }
  if (fn == "copyreg.__newobj_ex__") {
    arity(3, 3);
    Args ctor = a[1]->kind == Kind::Tuple ? copy_items(a[1]->items) : Args{a[1]};
    ctor.push_back(a[2]);
    return new_object(a[0], ctor);
  }
  if (fn == "builtins.slice" || fn == "argparse.Namespace" || fn == "numpy.dtype")
    return new_object(callable, copy_items(a));
  if (fn == "torch.device") {
    arity(1, 2);
    std::string device = str_arg(a[0], "device type");
    if (a.size() == 2 && a[1]->kind == Kind::Int) device += fmt::format(":{}", a[1]->integer);
    return make_text(Kind::Str, device);
  }
  if (fn == "torch.Size") {
    arity(0, 1);
    PickleValue* size = make(Kind::Tuple);
    if (!a.empty()) size->items = copy_items(a[0]->items);
    return size;
  }
  if (fn == "pathlib.PosixPath" || fn == "pathlib.WindowsPath" || fn == "pathlib.PurePosixPath" ||
      fn == "pathlib.PureWindowsPath" || fn == "pathlib.Path") {
    const char separator = fn.find("Windows") != std::string::npos ? '\\' : '/';
    std::string path;
    for (const PickleValue* part : a) {
      const std::string& piece = str_arg(part, "path part");
      if (!path.empty() && path.back() != '/' && path.back() != '\\') path += separator;
      path += piece;
    }
    return make_text(Kind::Str, path);
  }
  if (fn == "numpy.core.multiarray.scalar" || fn == "numpy._core.multiarray.scalar") return numpy_scalar(a);
  if (fn == "datetime.datetime" || fn == "datetime.date") {
    const size_t n = fn == "datetime.date" ? 4 : 10;
    arity(1, 2);
    if (a[0]->kind != Kind::Bytes || a[0]->text.size() != n) fail(fmt::format("'{}' of a {}", fn, a[0]->describe()));
    const auto* b = reinterpret_cast<const unsigned char*>(a[0]->text.data());
    std::string text = fmt::format("{:04}-{:02}-{:02}", b[0] * 256 + b[1], b[2] & 0x7f, b[3]);
    if (n == 10) {
      text += fmt::format("T{:02}:{:02}:{:02}", b[4], b[5], b[6]);
      if (const unsigned us = (b[7] << 16) | (b[8] << 8) | b[9]) text += fmt::format(".{:06}", us);
    }
    return make_text(Kind::Str, text);
  }
  if (fn == "torch.serialization._get_layout") {
    arity(1, 1);
    return make_text(Kind::Global, str_arg(a[0], "layout"));
  }
  fail("unsupported pickled callable '" + fn + "'");
}

PickleDocument Unpickler::run() {
  for (;;) {
    opcode_at_ = pos_;
    if (pos_ >= size_) {
      op_name_ = "";
      fail("truncated: the pickle ends before its STOP opcode");
    }
    const uint8_t op = data_[pos_++];
    op_name_ = opcode_name(op) ? opcode_name(op) : "?";
    switch (op) {
      case PROTO: {
        const uint64_t version = read_le(1);
        if (version > 5) fail(fmt::format("pickle protocol {} is newer than this reader (0 to 5)", version));
        break;
      }
      case FRAME: {
        const uint64_t n = read_le(8);
        if (n > size_ - pos_) fail(fmt::format("truncated: FRAME of {} bytes, {} left", n, size_ - pos_));
        break;
      }
      case STOP: {
        doc_.root_ = pop();
        return std::move(doc_);
      }
      case NONE: push(make(Kind::None)); break;
      case NEWTRUE:
      case NEWFALSE: {
        PickleValue* b = make(Kind::Bool);
        b->boolean = op == NEWTRUE;
        push(b);
        break;
      }
      case BININT: push(make_int(static_cast<int32_t>(read_le(4)))); break;
      case BININT1: push(make_int(static_cast<int64_t>(read_le(1)))); break;
      case BININT2: push(make_int(static_cast<int64_t>(read_le(2)))); break;
      case LONG1: push(make_long(read_le(1))); break;
      case LONG4: {
        const auto n = static_cast<int32_t>(read_le(4));
        if (n < 0) fail("LONG4 with a negative length");
        push(make_long(static_cast<uint64_t>(n)));
        break;
      }
      case BINFLOAT: {
        const uint8_t* p = take(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];  // big-endian, unlike everything else
        PickleValue* f = make(Kind::Float);
        std::memcpy(&f->real, &bits, 8);
        push(f);
        break;
      }
      case SHORT_BINUNICODE: push(make_text(Kind::Str, read_bytes(read_le(1)))); break;
      case BINUNICODE: push(make_text(Kind::Str, read_bytes(read_le(4)))); break;
      case BINUNICODE8: push(make_text(Kind::Str, read_bytes(read_le(8)))); break;
      case SHORT_BINSTRING: push(make_text(Kind::Str, read_bytes(read_le(1)))); break;  // Python 2 str
      case BINSTRING: {
        const auto n = static_cast<int32_t>(read_le(4));
        if (n < 0) fail("BINSTRING with a negative length");
        push(make_text(Kind::Str, read_bytes(static_cast<uint64_t>(n))));
        break;
      }
      case SHORT_BINBYTES: push(make_text(Kind::Bytes, read_bytes(read_le(1)))); break;
      case BINBYTES: push(make_text(Kind::Bytes, read_bytes(read_le(4)))); break;
      case BINBYTES8:
      case BYTEARRAY8: push(make_text(Kind::Bytes, read_bytes(read_le(8)))); break;
      case EMPTY_TUPLE: push(make(Kind::Tuple)); break;
      case TUPLE1:
      case TUPLE2:
      case TUPLE3: {
        const size_t n = op - TUPLE1 + 1;
        PickleValue* t = make(Kind::Tuple);
        t->items.resize(n);
        for (size_t i = n; i-- > 0;) t->items[i] = pop();
        push(t);
        break;
      }
      case TUPLE: {
        PickleValue* t = make(Kind::Tuple);
        t->items = pop_mark();
        push(t);
        break;
      }
      case EMPTY_LIST: push(make(Kind::List)); break;
      case LIST: {
        PickleValue* l = make(Kind::List);
        l->items = pop_mark();
        push(l);
        break;
      }
      case APPEND: {
        PickleValue* v = pop();
        add_items(top(), {v});
        break;
      }
      case APPENDS:
      case ADDITEMS: {
        Args items = pop_mark();
        add_items(top(), items);
        break;
      }
      case EMPTY_SET: push(make(Kind::Set)); break;
      case FROZENSET: {
        PickleValue* s = make(Kind::Set);
        s->items = pop_mark();
        push(s);
        break;
      }
      case EMPTY_DICT: push(make(Kind::Dict)); break;
      case DICT:
      case SETITEMS: {
        Args items = pop_mark();
        if (items.size() % 2) fail(fmt::format("{} with an odd number of values ({})", op_name_, items.size()));
        PickleValue* dict = op == DICT ? make(Kind::Dict) : top();
        for (size_t i = 0; i < items.size(); i += 2) set_item(dict, items[i], items[i + 1]);
        if (op == DICT) push(dict);
        break;
      }
      case SETITEM: {
        PickleValue* value = pop();
        PickleValue* key = pop();
        set_item(top(), key, value);
        break;
      }
      case MARK: marks_.push_back(stack_.size()); break;
      case POP:
        if (stack_.size() > fence())
          stack_.pop_back();
        else if (!marks_.empty())
          marks_.pop_back();  // what Python does: POP right after MARK drops the mark
        else
          fail("stack underflow: POP on an empty stack");
        break;
      case POP_MARK: pop_mark(); break;
      case DUP: push(top()); break;
      case BINPUT: memo_put(read_le(1)); break;
      case LONG_BINPUT: memo_put(read_le(4)); break;
      case MEMOIZE: memo_put(memo_.size()); break;
      case BINGET: memo_get(read_le(1)); break;
      case LONG_BINGET: memo_get(read_le(4)); break;
      case GLOBAL: {
        const std::string module = read_line();
        const std::string name = read_line();
        push(make_global(module, name));
        break;
      }
      case STACK_GLOBAL: {
        const PickleValue* name = pop();
        const PickleValue* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str)
          fail(fmt::format("STACK_GLOBAL of a {} and a {}, not two str", module->describe(), name->describe()));
        push(make_global(module->text, name->text));
        break;
      }
      case REDUCE: {
        const PickleValue* args = pop();
        const PickleValue* callable = pop();
        push(call(callable, args));
        break;
      }
      case NEWOBJ: {
        const PickleValue* args = pop();
        const PickleValue* cls = pop();
        if (args->kind != Kind::Tuple) fail(fmt::format("NEWOBJ arguments are a {}, not a tuple", args->describe()));
        push(new_object(cls, copy_items(args->items)));
        break;
      }
      case NEWOBJ_EX: {
        const PickleValue* kwargs = pop();
        const PickleValue* args = pop();
        const PickleValue* cls = pop();
        if (args->kind != Kind::Tuple || kwargs->kind != Kind::Dict)
          fail(fmt::format("NEWOBJ_EX of a {} and a {}, not a tuple and a dict", args->describe(), kwargs->describe()));
        Args ctor = copy_items(args->items);
        ctor.push_back(kwargs);
        push(new_object(cls, ctor));
        break;
      }
      case BUILD: {
        const PickleValue* state = pop();
        top()->state = state;
        break;
      }
      case BINPERSID: push(persistent_load(pop())); break;
      case READONLY_BUFFER: top(); break;
      case NEXT_BUFFER: fail("out-of-band buffers (NEXT_BUFFER) are not supported");
      default:
        if (opcode_name(op)) fail(fmt::format("unsupported pickle opcode {} (0x{:02x})", op_name_, op));
        fail(fmt::format("unknown pickle opcode 0x{:02x}", op));
    }
  }
}

PickleDocument unpickle(const void* data, size_t size, const UnpickleOptions& options) {
  return Unpickler(static_cast<const uint8_t*>(data), size, options).run();
}

}  // namespace revkit
