#include "core/pickle.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <cstring>
#include <map>
#include <string>

#include "core/error.h"

using namespace revkit;
using Kind = PickleValue::Kind;

namespace {

// Pickle bytes written by hand, opcode by opcode (names as in Python's pickletools).
std::string byte(unsigned v) { return std::string(1, static_cast<char>(v)); }
std::string le(uint64_t v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i, v >>= 8) out += byte(v & 0xff);
  return out;
}
const std::string kProto2 = byte(0x80) + byte(2);
const std::string kStop = ".";
const std::string kMark = "(";
std::string str(const std::string& s) { return "X" + le(s.size(), 4) + s; }
std::string short_str(const std::string& s) { return byte(0x8c) + byte(s.size()) + s; }
std::string k(unsigned v) { return "K" + byte(v); }
std::string j(int32_t v) { return "J" + le(static_cast<uint32_t>(v), 4); }
std::string global(const std::string& module, const std::string& name) { return "c" + module + "\n" + name + "\n"; }
std::string tuple1() { return byte(0x85); }
std::string tuple2() { return byte(0x86); }
std::string tuple3() { return byte(0x87); }
std::string put(unsigned i) { return "q" + byte(i); }
std::string get(unsigned i) { return "h" + byte(i); }
std::string binfloat(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  std::string out = "G";
  for (int i = 7; i >= 0; --i) out += byte((bits >> (8 * i)) & 0xff);
  return out;
}
// How protocol 2 writes a bytes object: _codecs.encode(<the bytes as latin-1 text>, 'latin1').
std::string protocol2_bytes(const std::string& raw) {
  std::string utf8;
  for (unsigned char c : raw) {
    if (c < 0x80) {
      utf8 += static_cast<char>(c);
    } else {
      utf8 += static_cast<char>(0xc0 | (c >> 6));
      utf8 += static_cast<char>(0x80 | (c & 0x3f));
    }
  }
  return global("_codecs", "encode") + str(utf8) + str("latin1") + tuple2() + "R";
}

struct Loaded {
  PickleDocument doc;
  const PickleValue& root() const { return doc.root(); }
};

UnpickleOptions options_for(const std::string& file = "test.pt") {
  UnpickleOptions options;
  options.file = file;
  return options;
}

Loaded load(const std::string& bytes, const UnpickleOptions& options = options_for()) {
  return Loaded{unpickle(bytes.data(), bytes.size(), options)};
}

std::string error_of(const std::string& bytes, const UnpickleOptions& options = options_for()) {
  try {
    unpickle(bytes.data(), bytes.size(), options);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

// A storage loader over fake records: key -> float values; counts how often each key is asked for.
struct FakeStorages {
  std::map<std::string, std::vector<float>> records;
  std::map<std::string, int> calls;
  PickleStorageLoader loader() {
    return [this](const std::string& key, c10::ScalarType dtype, int64_t numel) {
      ++calls[key];
      const std::vector<float>& values = records.at(key);
      at::Tensor bytes = at::empty({static_cast<int64_t>(values.size() * 4)}, at::kByte);
      std::memcpy(bytes.data_ptr(), values.data(), values.size() * 4);
      return bytes;
    };
  }
};

// torch.save's pickling of a float tensor: _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), ...).
std::string tensor(const std::string& key, int numel, int offset, const std::vector<int>& size,
                   const std::vector<int>& stride) {
  std::string out = global("torch._utils", "_rebuild_tensor_v2") + kMark + kMark + str("storage") +
                    global("torch", "FloatStorage") + str(key) + str("cpu") + j(numel) + "t" + "Q" + j(offset) + kMark;
  for (int s : size) out += j(s);
  out += "t" + kMark;
  for (int s : stride) out += j(s);
  return out + "t" + byte(0x89) + global("collections", "OrderedDict") + ")R" + "tR";
}

}  // namespace

TEST_CASE("scalars, strings and bytes of every encoding") {
  const std::string items = kProto2 + "]" + kMark + "N" + byte(0x88) + byte(0x89) + k(200) + "M" + le(60000, 2) +
                            j(-7) + byte(0x8a) + byte(0) + byte(0x8a) + byte(2) + le(0xff7f, 2) +  // LONG1 0, -129
                            byte(0x8a) + byte(8) + le(0x8000000000000000ull, 8) +                  // LONG1 -2^63
                            byte(0x8b) + le(5, 4) + le(0x0100000000ull, 5) +                       // LONG4 2^32
                            binfloat(-2.5) + short_str("héllo") + str("wide") + byte(0x8d) + le(2, 8) + "ok" + "U" +
                            byte(2) + "py" + "T" + le(3, 4) + "two" + "C" + byte(3) + std::string("a\0b", 3) + "B" +
                            le(1, 4) + "z" + byte(0x8e) + le(2, 8) + "yy" + byte(0x96) + le(1, 8) + "w" +
                            protocol2_bytes("\x01\xff") + "e" + kStop;
  const Loaded l = load(items);
  const auto& v = l.root().items;
  REQUIRE(l.root().kind == Kind::List);
  REQUIRE(v.size() == 21);
  CHECK(v[0]->is_none());
  CHECK((v[1]->kind == Kind::Bool && v[1]->boolean));
  CHECK((v[2]->kind == Kind::Bool && !v[2]->boolean));
  CHECK(v[3]->integer == 200);
  CHECK(v[4]->integer == 60000);
  CHECK(v[5]->integer == -7);
  CHECK(v[6]->integer == 0);
  CHECK(v[7]->integer == -129);
  CHECK(v[8]->integer == std::numeric_limits<int64_t>::min());
  CHECK(v[9]->integer == (int64_t{1} << 32));
  CHECK(v[10]->real == -2.5);
  CHECK(v[11]->text == "héllo");
  CHECK(v[12]->text == "wide");
  CHECK(v[13]->text == "ok");
  CHECK((v[14]->kind == Kind::Str && v[14]->text == "py"));
  CHECK(v[15]->text == "two");
  CHECK((v[16]->kind == Kind::Bytes && v[16]->text == std::string("a\0b", 3)));
  CHECK(v[17]->text == "z");
  CHECK(v[18]->text == "yy");
  CHECK((v[19]->kind == Kind::Bytes && v[19]->text == "w"));
  CHECK((v[20]->kind == Kind::Bytes && v[20]->text == "\x01\xff"));
}

TEST_CASE("containers, the memo and stack opcodes") {
  // {'a': (1,), 'b': [x, x] (one object twice), 1: 'first', 1.0: 'replaced'} with the same key given twice.
  const std::string dict = kProto2 + "}" + put(0) + kMark + str("a") + k(1) + tuple1() + str("b") + "]" + put(1) + ")" +
                           put(2) + "a" + get(2) + "a" + k(1) + str("first") + binfloat(1.0) + str("replaced") + "u" +
                           kStop;
  const Loaded l = load(dict);
  const PickleValue& root = l.root();
  REQUIRE(root.kind == Kind::Dict);
  REQUIRE(root.entries.size() == 3);  // 1 and 1.0 are one key, as in Python
  CHECK(root.get("a")->kind == Kind::Tuple);
  CHECK(root.get("a")->items[0]->integer == 1);
  const PickleValue* b = root.get("b");
  REQUIRE(b->items.size() == 2);
  CHECK(b->items[0] == b->items[1]);  // BINGET shares the node, as Python shares the object
  CHECK(root.entries[2].first->integer == 1);
  CHECK(root.entries[2].second->text == "replaced");
  CHECK(root.get("missing") == nullptr);

  // TUPLE, LIST, DICT from marks; tuples 2 and 3; POP, POP_MARK, DUP; tuple keys; SETITEM.
  const std::string more = kProto2 + "}" + kMark + k(1) + k(2) + tuple2() + str("pair") + kMark + k(9) +
                           "1" +  // POP_MARK
                           k(3) + k(4) + k(5) + tuple3() + kMark + k(6) + k(7) + "l" + "u" + str("t") + kMark + k(8) +
                           "t" + "2" + "0" + "s" + str("d") + kMark + str("k") + k(10) + "d" + "s" + kStop;
  const Loaded m = load(more);
  REQUIRE(m.root().entries.size() == 4);
  const auto& [pair_key, pair_value] = m.root().entries[0];
  CHECK(pair_key->kind == Kind::Tuple);
  CHECK(pair_key->items[1]->integer == 2);
  CHECK(pair_value->text == "pair");
  CHECK(m.root().entries[1].first->items.size() == 3);
  CHECK(m.root().entries[1].second->items[1]->integer == 7);
  CHECK(m.root().get("t")->items[0]->integer == 8);
  CHECK(m.root().get("d")->get("k")->integer == 10);

  // Protocol 4: FRAME, MEMOIZE, STACK_GLOBAL, EMPTY_SET/ADDITEMS, FROZENSET, LONG_BINPUT/LONG_BINGET.
  const std::string body = byte(0x8f) + byte(0x94) + kMark + k(1) + k(2) + byte(0x90) + kMark + k(3) + byte(0x91) +
                           byte(0x94) + short_str("collections") + short_str("OrderedDict") + byte(0x93) + "r" +
                           le(5, 4) + "000" + "j" + le(5, 4) + "j" + le(0, 4) + "j" + le(1, 4) + byte(0x87) + kStop;
  const std::string p4 = byte(0x80) + byte(4) + byte(0x95) + le(body.size(), 8) + body;
  const Loaded q = load(p4);
  REQUIRE(q.root().items.size() == 3);
  CHECK(q.root().items[0]->kind == Kind::Global);
  CHECK(q.root().items[0]->text == "collections.OrderedDict");
  CHECK(q.root().items[1]->items.size() == 2);  // the set {1, 2}
  CHECK(q.root().items[2]->kind == Kind::Set);
  CHECK(q.root().items[2]->items[0]->integer == 3);
}

TEST_CASE("classes stay names: NEWOBJ, NEWOBJ_EX, copyreg and BUILD make objects") {
  // Ultralytics pickles its model classes; any class is fine as long as nothing is called.
  const std::string bytes =
      kProto2 + kMark + global("models.common", "Conv") + ")" + byte(0x81) + "}" + str("k") + k(3) + "s" + "b" +
      global("ultralytics.nn.tasks", "DetectionModel") + k(1) + tuple1() + "}" + str("nc") + k(80) + "s" + byte(0x92) +
      global("copy_reg", "_reconstructor") + global("__main__", "Old") + global("__builtin__", "object") + "N" +
      tuple3() + "R" + global("copyreg", "__newobj__") + global("a.b", "C") + k(5) + tuple2() + "R" +
      global("argparse", "Namespace") + ")" + byte(0x81) + "}" + str("lr") + binfloat(0.1) + "s" + "b" + "l" + kStop;
  const Loaded l = load(bytes);
  const auto& v = l.root().items;
  REQUIRE(v.size() == 5);
  CHECK(v[0]->kind == Kind::Object);
  CHECK(v[0]->class_name() == "models.common.Conv");
  CHECK(v[0]->state->get("k")->integer == 3);
  CHECK(v[1]->class_name() == "ultralytics.nn.tasks.DetectionModel");
  REQUIRE(v[1]->args.size() == 2);  // NEWOBJ_EX: the positional arguments, then the keyword dict
  CHECK(v[1]->args[1]->get("nc")->integer == 80);
  CHECK(v[2]->class_name() == "__main__.Old");
  CHECK(v[2]->args[0]->text == "builtins.object");  // Python 2 module names are mapped to Python 3's
  CHECK(v[3]->class_name() == "a.b.C");
  CHECK(v[3]->args[0]->integer == 5);
  CHECK(v[4]->state->get("lr")->real == 0.1);
  CHECK(v[4]->describe() == "object of class 'argparse.Namespace'");
}

TEST_CASE("the known callables are evaluated by hand") {
  const std::string numpy_f8 = global("numpy._core.multiarray", "scalar") + global("numpy", "dtype") + str("f8") +
                               byte(0x89) + byte(0x88) + tuple3() + "R" + kMark + k(3) + str("<") + "NNN" + j(-1) +
                               j(-1) + k(0) + "t" + "b" + protocol2_bytes(std::string("\0\0\0\0\0\0\xe0?", 8)) +
                               tuple2() + "R";
  auto numpy = [](const std::string& code, const std::string& raw) {
    return global("numpy.core.multiarray", "scalar") + global("numpy", "dtype") + str(code) + byte(0x89) + byte(0x88) +
           tuple3() + "R" + protocol2_bytes(raw) + tuple2() + "R";
  };
  const std::string datetime = global("datetime", "datetime") +
                               protocol2_bytes(std::string("\x07\xe8\x05\x06\x07\x08\x09\x00\x00\x7b", 10)) + tuple1() +
                               "R";
  const std::string bytes =
      kProto2 + kMark + global("collections", "OrderedDict") + ")R" + global("collections", "OrderedDict") + "]" +
      kMark + str("x") + k(1) + tuple2() + str("y") + k(2) + tuple2() + "e" + tuple1() + "R" +
      global("__builtin__", "set") + "]" + kMark + k(1) + k(2) + "e" + tuple1() + "R" +
      global("builtins", "frozenset") + ")R" + global("torch", "device") + str("cuda") + k(1) + tuple2() + "R" +
      global("torch", "device") + str("cpu") + tuple1() + "R" + global("torch", "Size") + k(2) + k(3) + tuple2() +
      tuple1() + "R" + global("pathlib", "PosixPath") + str("/") + str("data") + str("coco.yaml") + tuple3() + "R" +
      numpy_f8 + numpy("f4", std::string("\0\0\xc0?", 4)) + numpy("i8", le(static_cast<uint64_t>(-3), 8)) +
      numpy("i4", le(7, 4)) + numpy("b1", "\x01") + datetime + global("torch.serialization", "_get_layout") +
      str("torch.strided") + tuple1() + "R" + global("torch", "float16") + global("__builtin__", "slice") + k(1) +
      k(2) + "N" + tuple3() + "R" + global("__builtin__", "bytearray") + protocol2_bytes("xy") + tuple1() + "R" +
      global("__builtin__", "bytes") + ")R" + "l" + kStop;
  const Loaded l = load(bytes);
  const auto& v = l.root().items;
  REQUIRE(v.size() == 19);
  CHECK((v[0]->kind == Kind::Dict && v[0]->entries.empty()));
  REQUIRE(v[1]->entries.size() == 2);
  CHECK(v[1]->get("y")->integer == 2);
  CHECK((v[2]->kind == Kind::Set && v[2]->items.size() == 2));
  CHECK((v[3]->kind == Kind::Set && v[3]->items.empty()));
  CHECK(v[4]->text == "cuda:1");
  CHECK(v[5]->text == "cpu");
  CHECK((v[6]->kind == Kind::Tuple && v[6]->items[1]->integer == 3));
  CHECK(v[7]->text == "/data/coco.yaml");
  CHECK((v[8]->kind == Kind::Float && v[8]->real == 0.5));
  CHECK(v[9]->real == 1.5);
  CHECK((v[10]->kind == Kind::Int && v[10]->integer == -3));
  CHECK(v[11]->integer == 7);
  CHECK((v[12]->kind == Kind::Bool && v[12]->boolean));
  CHECK(v[13]->text == "2024-05-06T07:08:09.000123");
  CHECK((v[14]->kind == Kind::Global && v[14]->text == "torch.strided"));
  CHECK((v[15]->kind == Kind::Global && v[15]->text == "torch.float16"));
  CHECK(v[16]->class_name() == "builtins.slice");
  CHECK((v[17]->kind == Kind::Bytes && v[17]->text == "xy"));
  CHECK((v[18]->kind == Kind::Bytes && v[18]->text.empty()));
}

TEST_CASE("tensors: views on storages that are read once and shared") {
  FakeStorages storages;
  storages.records["0"] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  UnpickleOptions options = options_for();
  options.load_storage = storages.loader();
  // A 3x4 tensor, its transpose, a strided slice at offset 5, and a Parameter wrapping a 0-d view.
  const std::string bytes = kProto2 + kMark + tensor("0", 12, 0, {3, 4}, {4, 1}) + tensor("0", 12, 0, {4, 3}, {1, 4}) +
                            tensor("0", 12, 5, {2}, {3}) + global("torch._utils", "_rebuild_parameter") +
                            tensor("0", 12, 11, {}, {}) + byte(0x88) + global("collections", "OrderedDict") + ")R" +
                            tuple3() + "R" + "l" + kStop;
  const Loaded l = load(bytes, options);
  const auto& v = l.root().items;
  REQUIRE(v.size() == 4);
  CHECK(storages.calls.at("0") == 1);
  const at::Tensor& full = v[0]->tensor;
  CHECK(at::equal(full, at::arange(12, at::kFloat).view({3, 4})));
  CHECK(at::equal(v[1]->tensor, at::arange(12, at::kFloat).view({3, 4}).t()));
  CHECK(v[1]->tensor.strides() == at::IntArrayRef({1, 4}));
  CHECK(at::equal(v[2]->tensor, at::tensor({5.0f, 8.0f})));
  CHECK(v[2]->tensor.storage_offset() == 5);
  CHECK(v[3]->tensor.dim() == 0);
  CHECK(v[3]->tensor.item<float>() == 11.0f);
  CHECK(v[2]->tensor.is_alias_of(full));  // one storage, as in Python
  CHECK(v[0]->describe() == "tensor [3, 4] Float");

  // _rebuild_tensor_v3 (dtype given, untyped storage) and a Tensor subclass through _rebuild_from_type_v2.
  storages.records["1"] = {1.0f, 2.0f};
  const std::string v3 = kProto2 + global("torch._tensor", "_rebuild_from_type_v2") + kMark +
                         global("torch._utils", "_rebuild_tensor_v3") + global("torch", "Tensor") + kMark + kMark +
                         str("storage") + global("torch", "UntypedStorage") + str("1") + str("cpu") + j(8) + "t" + "Q" +
                         j(0) + j(4) + tuple1() + j(1) + tuple1() + byte(0x89) + global("collections", "OrderedDict") +
                         ")R" + global("torch", "int16") + "t" + "}" + "t" + "R" + kStop;
  const Loaded t = load(v3, options);
  REQUIRE(t.root().kind == Kind::Tensor);
  CHECK((t.root().tensor.scalar_type() == at::kShort));
  CHECK(t.root().tensor.numel() == 4);
  float as_float[2] = {1.0f, 2.0f};
  CHECK(std::memcmp(t.root().tensor.data_ptr(), as_float, 8) == 0);
}

TEST_CASE("deep nesting and cycles need no recursion") {
  const int depth = 200000;
  std::string nested = kProto2 + std::string(depth, ']') + std::string(depth - 1, 'a') + kStop;
  const Loaded l = load(nested);
  const PickleValue* v = &l.root();
  int levels = 1;
  while (!v->items.empty()) v = v->items[0], ++levels;
  CHECK(levels == depth);

  // A dict key made of tuples nested as deep.
  std::string key = kProto2 + "}" + ")" + std::string(depth, static_cast<char>(0x85)) + k(1) + "s" + kStop;
  CHECK(load(key).root().entries.size() == 1);

  // A list that contains itself.
  const Loaded cycle = load(kProto2 + "]" + put(0) + get(0) + "a" + kStop);
  CHECK(cycle.root().items[0] == &cycle.root());
}

TEST_CASE("unpickling errors name the file, the problem and the byte") {
  CHECK(error_of(kProto2 + "}" + byte(0xff) + kStop) == "test.pt: unknown pickle opcode 0xff in data.pkl at byte 3");
  CHECK(error_of(kProto2 + "i" + kStop) == "test.pt: unsupported pickle opcode INST (0x69) in data.pkl at byte 2");
  // The "unknown class" case: calling anything outside the known list, a class included.
  CHECK(error_of(kProto2 + global("os", "system") + str("true") + tuple1() + "R" + kStop) ==
        "test.pt: unsupported pickled callable 'os.system' in data.pkl at byte 23");
  CHECK(error_of(kProto2 + global("models.common", "Conv") + ")R" + kStop) ==
        "test.pt: unsupported pickled callable 'models.common.Conv' in data.pkl at byte 23");
  CHECK(error_of(kProto2 + global("__builtin__", "eval") + str("1") + tuple1() + "R" + kStop) ==
        "test.pt: unsupported pickled callable 'builtins.eval' in data.pkl at byte 27");
  CHECK(error_of(kProto2 + "0" + kStop) == "test.pt: stack underflow: POP on an empty stack in data.pkl at byte 2");
  CHECK(error_of(kProto2 + k(1) + "a" + kStop) ==
        "test.pt: stack underflow: APPEND needs a value in data.pkl at byte 4");
  CHECK(error_of(kProto2 + k(1) + "t" + kStop) ==
        "test.pt: MARK stack underflow: TUPLE without a MARK in data.pkl at byte 4");
  CHECK(error_of(kProto2 + k(1) + kMark + "a" + kStop) ==
        "test.pt: stack underflow: APPEND needs a value in data.pkl at byte 5");
  CHECK(error_of(kProto2 + "j" + le(4000, 4) + kStop) ==
        "test.pt: memo index 4000 was never set in data.pkl at byte 2");
  CHECK(error_of(kProto2 + "N" + "r" + le(0xffffffff, 4) + kStop) ==
        "test.pt: memo index 4294967295 is out of range for a pickle of 9 bytes in data.pkl at byte 3");
  CHECK(error_of(kProto2 + byte(0x8a) + byte(9) + std::string(9, '\1') + kStop) ==
        "test.pt: integer of 9 bytes does not fit 64 bits in data.pkl at byte 2");
  CHECK(error_of(kProto2 + byte(0x8d) + le(uint64_t{1} << 62, 8) + "abc") ==
        "test.pt: truncated: BINUNICODE8 needs 4611686018427387904 more bytes, 3 left in data.pkl at byte 2");
  CHECK(error_of(kProto2 + "N") == "test.pt: truncated: the pickle ends before its STOP opcode in data.pkl at byte 3");
  CHECK(error_of(kProto2 + "c" + "os") == "test.pt: truncated: GLOBAL has no end of line in data.pkl at byte 2");
  CHECK(error_of(byte(0x80) + byte(6) + kStop) ==
        "test.pt: pickle protocol 6 is newer than this reader (0 to 5) in data.pkl at byte 0");
  CHECK(error_of(kProto2 + byte(0x97) + kStop) ==
        "test.pt: out-of-band buffers (NEXT_BUFFER) are not supported in data.pkl at byte 2");
  CHECK(error_of(kProto2 + "}" + kMark + k(1) + "u" + kStop) ==
        "test.pt: SETITEMS with an odd number of values (1) in data.pkl at byte 6");
  CHECK(error_of(kProto2 + "}" + "]" + k(1) + "s" + kStop) ==
        "test.pt: unhashable dict key: a list of 0 in data.pkl at byte 6");
  CHECK(error_of(kProto2 + k(1) + "]" + "s" + kStop) ==
        "test.pt: stack underflow: SETITEM needs a value in data.pkl at byte 5");
  CHECK(error_of(kProto2 + k(1) + ")" + byte(0x81) + kStop) ==
        "test.pt: NEWOBJ of a int 1, not a class in data.pkl at byte 5");
  CHECK(error_of(kProto2 + "N" + "Q" + kStop) ==
        "test.pt: persistent id is a None, not ('storage', type, key, location, numel) in data.pkl at byte 3");
  const std::string pid =
      kProto2 + kMark + str("storage") + global("torch", "FloatStorage") + str("0") + str("cpu") + k(4) + "t";
  CHECK(error_of(pid + "Q" + kStop) ==
        "test.pt: a tensor storage, but no archive to read it from in data.pkl at byte " + std::to_string(pid.size()));
  const std::string complex =
      kProto2 + kMark + str("storage") + global("torch", "ComplexFloatStorage") + str("0") + str("cpu") + k(4) + "t";
  CHECK(error_of(complex + "Q" + kStop) ==
        "test.pt: unknown storage type: a global 'torch.ComplexFloatStorage' in data.pkl at byte " +
            std::to_string(complex.size()));
  // The record name is optional in messages.
  UnpickleOptions bare = options_for("x.pkl");
  bare.record = "";
  CHECK(error_of(kProto2 + "}" + byte(0xff) + kStop, bare) == "x.pkl: unknown pickle opcode 0xff at byte 3");
}

TEST_CASE("tensors that do not fit their storage are refused before anything is allocated") {
  FakeStorages storages;
  storages.records["0"] = {1, 2, 3, 4};
  UnpickleOptions options = options_for();
  options.load_storage = storages.loader();
  auto error = [&](const std::string& t) { return error_of(kProto2 + t + kStop, options); };
  CHECK(error(tensor("0", 4, 0, {2, 3}, {3, 1}))
            .find("test.pt: tensor of size [2, 3] has more elements than its storage '0' holds (4 of Float)") == 0);
  CHECK(error(tensor("0", 4, 1, {2, 2}, {2, 1}))
            .find("tensor of size [2, 2] and stride [2, 1] at offset 1 needs 5 elements, but its storage '0' holds 4 "
                  "of Float") != std::string::npos);
  CHECK(error(tensor("0", 4, 0, {2}, {4})).find("needs 5 elements") != std::string::npos);
  CHECK(error(tensor("0", 4, 0, {1 << 30, 1 << 30, 1 << 30}, {1, 1, 1})).find("has more elements than its storage") !=
        std::string::npos);
  CHECK(error(tensor("0", 4, 0, {2, 1}, {0x7fffffff, 0x7fffffff})).find("needs") != std::string::npos);
  CHECK(error(tensor("0", 4, 0, {2}, {-1})).find("tensor stride has an entry that is a int -1, not a size") !=
        std::string::npos);
  CHECK(error(tensor("0", 4, 0, {2, 2}, {1})).find("differ in length") != std::string::npos);
  CHECK(error(tensor("0", 4, 0, std::vector<int>(65, 1), std::vector<int>(65, 1))).find("65 dimensions") !=
        std::string::npos);
  // An empty view at the very end is fine.
  CHECK(error_of(kProto2 + tensor("0", 4, 4, {0}, {1}) + kStop, options) == "(no error)");
}

TEST_CASE("every truncation of a valid pickle is an InputError") {
  FakeStorages storages;
  storages.records["0"] = {1, 2, 3, 4};
  UnpickleOptions options = options_for();
  options.load_storage = storages.loader();
  const std::string whole = kProto2 + "}" + put(0) + kMark + str("w") + tensor("0", 4, 0, {2, 2}, {2, 1}) + str("n") +
                            global("numpy.core.multiarray", "scalar") + global("numpy", "dtype") + str("i8") +
                            byte(0x89) + byte(0x88) + tuple3() + "R" + protocol2_bytes(le(3, 8)) + tuple2() + "R" +
                            "u" + kStop;
  REQUIRE(load(whole, options).root().entries.size() == 2);
  for (size_t n = 0; n < whole.size(); ++n) {
    INFO(n);
    CHECK_THROWS_AS(unpickle(whole.data(), n, options), InputError);
  }
}

TEST_CASE("copies of memoized values are bounded") {
  // set(l) of one 1000-item list, 5000 times over: tiny input, a billion pointers if nothing stopped it.
  std::string bomb = kProto2 + "]" + put(0) + kMark + std::string(1000, 'N') + "e" + "0" + kMark;
  for (int i = 0; i < 5000; ++i) bomb += global("builtins", "set") + get(0) + tuple1() + "R";
  bomb += "l" + kStop;
  CHECK(error_of(bomb).find("the pickle expands to more than 8 times its size") != std::string::npos);
}
