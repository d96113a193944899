#include "core/pytorch_checkpoint.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "core/error.h"

namespace fs = std::filesystem;
using namespace revkit;

namespace {

const std::string kFixtures = std::string(REVKIT_TEST_FIXTURES) + "/pytorch/";

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("revkit_ptckpt_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// A torch.save-shaped archive written with LibTorch's own zip writer around records given by hand.
void write_archive(const std::string& path, const std::map<std::string, std::string>& records) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  for (const auto& [name, data] : records) writer.writeRecord(name, data.data(), data.size());
  writer.writeEndOfFile();
}

std::string error_of(const std::string& path) {
  try {
    read_pytorch_checkpoint(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

// The tensors make_checkpoints.py recorded next to each fixture: name dtype ndim sizes... values...
void check_expected(const PyTorchCheckpoint& got, const std::string& fixture) {
  std::ifstream in(kFixtures + fixture + ".expected.txt");
  REQUIRE(in);
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string name, dtype;
    int64_t ndim;
    row >> name >> dtype >> ndim;
    std::vector<int64_t> sizes(ndim);
    for (auto& s : sizes) row >> s;
    std::vector<std::string> values{std::istream_iterator<std::string>(row), {}};
    names.push_back(name);
    INFO(fixture << ": " << name);
    REQUIRE(got.tensors.count(name) == 1);
    const at::Tensor& t = got.tensors.at(name);
    CHECK(c10::toString(t.scalar_type()) == dtype);
    CHECK(t.sizes().vec() == sizes);
    REQUIRE(static_cast<size_t>(t.numel()) == values.size());
    const at::Tensor flat = t.reshape({-1});
    for (size_t i = 0; i < values.size(); ++i) {
      if (t.is_floating_point())
        CHECK(flat[static_cast<int64_t>(i)].item<double>() == std::strtod(values[i].c_str(), nullptr));
      else
        CHECK(flat[static_cast<int64_t>(i)].item<int64_t>() == std::strtoll(values[i].c_str(), nullptr, 10));
    }
  }
  CHECK(got.order == names);
  CHECK(got.tensors.size() == names.size());
}

std::string byte(unsigned v) { return std::string(1, static_cast<char>(v)); }
std::string le32(uint32_t v) {
  std::string out;
  for (int i = 0; i < 4; ++i, v >>= 8) out += byte(v & 0xff);
  return out;
}
std::string str(const std::string& s) { return "X" + le32(s.size()) + s; }
std::string j(int32_t v) { return "J" + le32(static_cast<uint32_t>(v)); }
const std::string kProto2 = byte(0x80) + byte(2);

// {'w': tensor} with a FloatStorage of `numel` elements and the given size and stride, as torch.save writes it.
std::string state_dict_pickle(int numel, const std::vector<int>& size, const std::vector<int>& stride) {
  std::string out = kProto2 + "ccollections\nOrderedDict\n)R(" + str("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" +
                    str("storage") + "ctorch\nFloatStorage\n" + str("0") + str("cpu") + j(numel) + "tQ" + j(0) + "(";
  for (int s : size) out += j(s);
  out += "t(";
  for (int s : stride) out += j(s);
  return out + "t" + byte(0x89) + "ccollections\nOrderedDict\n)RtRu.";
}
std::string floats(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) out.append(reinterpret_cast<const char*>(&v), 4);
  return out;
}

}  // namespace

TEST_CASE("a state dict from torch.save: every dtype, views that share a storage, 0-d and empty tensors") {
  const PyTorchCheckpoint ckpt = read_pytorch_checkpoint(kFixtures + "state_dict.pt");
  CHECK(ckpt.layout == "state dict");
  check_expected(ckpt, "state_dict");
  CHECK(ckpt.order.front() == "0.weight");
  CHECK(ckpt.tensors.at("1.num_batches_tracked").item<int64_t>() == 7);
  CHECK((ckpt.tensors.at("1.num_batches_tracked").scalar_type() == at::kLong));
  // Views keep their layout and their storage, as torch.load gives them.
  const at::Tensor& base = ckpt.tensors.at("base");
  const at::Tensor& strided = ckpt.tensors.at("strided");
  CHECK(strided.strides() == at::IntArrayRef({6, 2}));
  CHECK(strided.is_alias_of(base));
  CHECK(at::equal(strided, at::arange(24, at::kFloat).view({4, 6}).slice(1, 0, 6, 2)));
  CHECK(ckpt.tensors.at("offset").storage_offset() == 7);
  CHECK(ckpt.tensors.at("offset")[0][0].item<float>() == 7.0f);
  CHECK(ckpt.tensors.at("transposed").strides() == at::IntArrayRef({1, 6}));
  CHECK(ckpt.tensors.at("scalar").dim() == 0);
  CHECK(ckpt.tensors.at("empty").sizes() == at::IntArrayRef({0, 3}));
  // Half precision becomes float32.
  CHECK((ckpt.tensors.at("half").scalar_type() == at::kFloat));
  CHECK(ckpt.tensors.at("half")[4].item<float>() == 2.0f);
  CHECK(ckpt.tensors.at("bf16")[1].item<float>() == -0.25f);
  CHECK(ckpt.tensors.at("big_int64")[1].item<int64_t>() == (int64_t{1} << 62) + 1);
  CHECK(ckpt.skipped.empty());
  CHECK(ckpt.info.empty());
}

TEST_CASE("{'model': state dict} with DataParallel's 'module.' prefix and the checkpoint's small facts") {
  const PyTorchCheckpoint ckpt = read_pytorch_checkpoint(kFixtures + "checkpoint_dataparallel.pt");
  CHECK(ckpt.layout == "{'model': state dict}");
  check_expected(ckpt, "checkpoint_dataparallel");
  CHECK(ckpt.order == std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                               "1.running_var", "1.num_batches_tracked"});
  CHECK(ckpt.info.at("epoch") == "3");
  CHECK(ckpt.info.at("best_fitness") == "0.75");
  CHECK(ckpt.info.at("date") == "2024-01-02T03:04:05");
  CHECK(ckpt.info.at("train_args") == R"({"imgsz": 64, "batch": 2, "name": "exp"})");
  CHECK(ckpt.info.count("optimizer") == 0);  // None
  CHECK(ckpt.info.count("model") == 0);
}

TEST_CASE("Ultralytics' layout: 'ema' before 'model', pickled modules in half precision, the model's attributes") {
  const PyTorchCheckpoint ckpt = read_pytorch_checkpoint(kFixtures + "module_checkpoint.pt");
  CHECK(ckpt.layout == "{'ema': pickled module TinyDetector}");
  check_expected(ckpt, "module_checkpoint");
  // The EMA copy has half the weights of 'model': these are its numbers, as float32.
  CHECK((ckpt.tensors.at("scale").scalar_type() == at::kFloat));
  CHECK(at::equal(ckpt.tensors.at("scale"), at::tensor({0.25f, -0.625f})));
  CHECK((ckpt.tensors.at("stem.bn.num_batches_tracked").scalar_type() == at::kLong));
  CHECK(ckpt.tensors.count("cache") == 0);   // non-persistent
  CHECK(ckpt.tensors.count("unused") == 0);  // a None parameter
  CHECK(ckpt.skipped == std::vector<std::string>{"cache"});
  CHECK(ckpt.info.at("names") == R"({"0": "cat", "1": "dog"})");
  CHECK(ckpt.info.at("nc") == "2");  // from yaml['nc']
  CHECK(ckpt.info.at("yaml") == R"({"nc": 2, "depth_multiple": 0.33, "backbone": [[-1, 1, "Conv", [16, 3, 2]]]})");
  CHECK(ckpt.info.at("stride") == "[8, 16, 32]");
  CHECK(ckpt.info.at("epoch") == "5");
  CHECK(ckpt.info.at("updates") == "42");
  CHECK(ckpt.info.at("version") == "8.3.0");
  CHECK(ckpt.info.count("best_fitness") == 0);
}

TEST_CASE("a whole nn.Module pickled on its own gives state_dict()'s names and order") {
  const PyTorchCheckpoint ckpt = read_pytorch_checkpoint(kFixtures + "module_whole.pt");
  CHECK(ckpt.layout == "pickled module TinyDetector");
  check_expected(ckpt, "module_whole");
  CHECK(ckpt.order.front() == "scale");
  CHECK(ckpt.order.back() == "head_alias.bias");  // a module under two names is listed twice, like state_dict()
  CHECK(ckpt.tensors.at("head_alias.weight").is_alias_of(ckpt.tensors.at("head.weight")));
  CHECK(ckpt.skipped == std::vector<std::string>{"cache"});
}

TEST_CASE("pickle protocols 4 and 5, and what torch.save users pickle beside the weights") {
  const PyTorchCheckpoint p4 = read_pytorch_checkpoint(kFixtures + "protocol4.pt");
  CHECK(p4.layout == "{'state_dict': state dict}");
  check_expected(p4, "protocol4");
  CHECK(p4.info.at("epoch") == "1");
  CHECK(p4.info.at("lr") == "0.01");
  CHECK(p4.info.at("tags") == "[1, 2, 3]");
  CHECK(p4.info.at("frozen") == "[1]");
  CHECK(p4.info.at("path") == "/data/coco.yaml");
  CHECK(p4.info.at("device") == "cuda:0");
  CHECK(p4.info.at("size") == "[2, 3]");
  CHECK(p4.info.at("dtype") == "torch.float16");
  CHECK(p4.info.at("layout") == "torch.strided");
  CHECK(p4.info.at("when") == "2024-05-06T07:08:09.000123");
  CHECK(p4.info.at("long_text") == std::string(300, 'x'));
  CHECK(p4.info.at("big") == "1099511627776");
  CHECK(p4.info.at("neg") == "-5");
  CHECK(p4.info.at("nested") == R"({"a": [1, 2.5, null, true], "b": [3, "c"]})");
  CHECK(p4.info.count("blob") == 0);  // bytes are no small fact

  const PyTorchCheckpoint p5 = read_pytorch_checkpoint(kFixtures + "protocol5.pt");
  CHECK(p5.layout == "{'model': pickled module TinyDetector}");  // 'ema' is None
  check_expected(p5, "protocol5");
}

TEST_CASE("reading from memory gives what reading the file gives") {
  const std::string bytes = read_bytes(kFixtures + "module_checkpoint.pt");
  const PyTorchCheckpoint a = read_pytorch_checkpoint(bytes.data(), bytes.size(), "in-memory.pt");
  const PyTorchCheckpoint b = read_pytorch_checkpoint(kFixtures + "module_checkpoint.pt");
  CHECK(a.order == b.order);
  CHECK(a.layout == b.layout);
  CHECK(a.info == b.info);
  for (const auto& name : a.order) CHECK(at::equal(a.tensors.at(name), b.tensors.at(name)));
  CHECK_THROWS_WITH_AS(read_pytorch_checkpoint(bytes.data(), bytes.size() / 2, "in-memory.pt"),
                       doctest::Contains("in-memory.pt: cannot read it as a zip archive"), InputError);
}

TEST_CASE("the unpickled object graph is there for callers that want more than weights") {
  const PickleDocument doc = read_pytorch_pickle(kFixtures + "module_checkpoint.pt");
  const PickleValue& root = doc.root();
  REQUIRE(root.is(PickleValue::Kind::Dict));
  CHECK(root.get("ema")->class_name() == "__main__.TinyDetector");
  CHECK(root.get("train_args")->get("epochs")->integer == 10);
  const PyTorchCheckpoint ckpt = checkpoint_from_pickle(root, "x.pt");
  CHECK(ckpt.layout == "{'ema': pickled module TinyDetector}");
}

TEST_CASE("files that are not torch.save zip archives: clear errors naming the file") {
  TempDir dir;
  CHECK(error_of(dir.file("none.pt")) == dir.file("none.pt") + ": cannot open file");
  CHECK(error_of(dir.path.string()) == dir.path.string() + ": is a directory, not a checkpoint");
  const std::string legacy = error_of(kFixtures + "legacy.pt");
  CHECK(legacy.find(kFixtures + "legacy.pt: a pickle, not a zip archive: the legacy torch.save format") == 0);
  CHECK(legacy.find("re-save it with torch.save from PyTorch >= 1.6 (_use_new_zipfile_serialization=True") !=
        std::string::npos);
  write_bytes(dir.file("empty.pt"), "");
  CHECK(error_of(dir.file("empty.pt")) == dir.file("empty.pt") + ": empty file");
  write_bytes(dir.file("text.pt"), "not a checkpoint\n");
  CHECK(error_of(dir.file("text.pt")) ==
        dir.file("text.pt") + ": not a zip archive, so not a checkpoint torch.save wrote (PyTorch >= 1.6)");

  // Truncated: the zip's directory at the end is gone.
  const std::string whole = read_bytes(kFixtures + "state_dict.pt");
  for (size_t cut : {whole.size() / 2, whole.size() - 10, size_t{100}, size_t{3}}) {
    INFO(cut);
    write_bytes(dir.file("cut.pt"), whole.substr(0, cut));
    const std::string e = error_of(dir.file("cut.pt"));
    CHECK(e.find(dir.file("cut.pt") + ": cannot read it as a zip archive (truncated or damaged?)") == 0);
    CHECK(e.find('\n') == std::string::npos);
  }

  write_archive(dir.file("other.pt"), {{"weights.bin", "1234"}});
  CHECK(error_of(dir.file("other.pt")) ==
        dir.file("other.pt") + ": no data.pkl in the archive: not a checkpoint torch.save wrote");
  write_archive(dir.file("script.pt"), {{"data.pkl", kProto2 + "N."}, {"constants.pkl", kProto2 + ")."}});
  CHECK(error_of(dir.file("script.pt")).find("a TorchScript archive (torch.jit.save), not a torch.save checkpoint") !=
        std::string::npos);
}

TEST_CASE("broken data.pkl and storages: errors name the file, the problem and the byte") {
  TempDir dir;
  const std::string bad = dir.file("bad.pt");
  auto error_with = [&](const std::map<std::string, std::string>& records) {
    write_archive(bad, records);
    return error_of(bad);
  };
  const std::string prefix = bad + ": ";
  CHECK(error_with({{"data.pkl", kProto2 + "}" + byte(0xff) + "."}}) ==
        prefix + "unknown pickle opcode 0xff in data.pkl at byte 3");
  // A reference to os.system, called through REDUCE: refused, never run.
  CHECK(error_with({{"data.pkl", kProto2 + "cos\nsystem\n" + str("echo hi") + byte(0x85) + "R."}}) ==
        prefix + "unsupported pickled callable 'os.system' in data.pkl at byte 26");
  // The tensor claims 2x2 floats of a storage that has 2.
  CHECK(
      error_with({{"data.pkl", state_dict_pickle(2, {2, 2}, {2, 1})}, {"data/0", floats({1, 2})}})
          .find(
              prefix +
              "tensor of size [2, 2] has more elements than its storage '0' holds (2 of Float) in data.pkl at byte ") ==
      0);
  // The pickle says 4 floats, the record has 2.
  CHECK(error_with({{"data.pkl", state_dict_pickle(4, {2, 2}, {2, 1})}, {"data/0", floats({1, 2})}}) ==
        prefix + "storage 'data/0' holds 8 bytes, but data.pkl declares 4 elements of Float");
  CHECK(error_with({{"data.pkl", state_dict_pickle(4, {1 << 30, 1 << 30}, {1, 1})}, {"data/0", floats({1, 2, 3, 4})}})
            .find("tensor of size [1073741824, 1073741824] has more elements than its storage") != std::string::npos);
  CHECK(error_with({{"data.pkl", state_dict_pickle(1 << 30, {2}, {1})}, {"data/0", floats({1, 2})}}) ==
        prefix + "storage 'data/0' holds 8 bytes, but data.pkl declares 1073741824 elements of Float");
  CHECK(error_with({{"data.pkl", state_dict_pickle(4, {2, 2}, {2, 1})}}) ==
        prefix + "data.pkl refers to storage 'data/0', which the archive does not have");
  CHECK(error_with({{"data.pkl", kProto2 + "}q" + byte(0) + "j" + le32(60000) + "."}}) ==
        prefix + "memo index 60000 was never set in data.pkl at byte 5");
  CHECK(error_with({{"data.pkl", kProto2 + "}r" + le32(1u << 31) + "."}}) ==
        prefix + "memo index 2147483648 is out of range for a pickle of 9 bytes in data.pkl at byte 3");
  CHECK(error_with({{"data.pkl", kProto2 + "}"}}) ==
        prefix + "truncated: the pickle ends before its STOP opcode in data.pkl at byte 3");
  CHECK(error_with({{"data.pkl", state_dict_pickle(4, {2, 2}, {2, 1})},
                    {"data/0", floats({1, 2, 3, 4})},
                    {"byteorder", "big"}}) ==
        prefix + "byteorder is 'big': only little-endian checkpoints can be read");
  // Readable pickles that hold no weights.
  CHECK(error_with({{"data.pkl", kProto2 + "]q" + byte(0) + "h" + byte(0) + "a."}}) ==
        prefix +
            "data.pkl holds a list of 1, not a state dict, a dict with 'model', 'state_dict' or 'ema', or a pickled "
            "module");
  CHECK(error_with({{"data.pkl", kProto2 + "}(" + str("epoch") + "K" + byte(3) + str("model") + "]u."}}) ==
        prefix +
            "no state dict in data.pkl: a dict with keys ['epoch', 'model'], and none of 'ema', 'model_ema', 'model', "
            "'state_dict' holds a state dict or a pickled module");
  // And one that is fine, for contrast.
  write_archive(bad, {{"data.pkl", state_dict_pickle(4, {2, 2}, {2, 1})}, {"data/0", floats({1, 2, 3, 4})}});
  CHECK(at::equal(read_pytorch_checkpoint(bad).tensors.at("w"), at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({2, 2})));
}

TEST_CASE("a module graph with a cycle ends") {
  // A module whose _modules holds itself, and a parameter that is not a tensor.
  const std::string loop = kProto2 + "c__main__\nNet\n)" + byte(0x81) + "q" + byte(0) + "}(" + str("_parameters") +
                           "}" + str("p") + "K" + byte(1) + "s" + str("_buffers") + "}" + str("_modules") + "}" +
                           str("again") + "h" + byte(0) + "s" + "ub.";
  UnpickleOptions options;
  options.file = "loop.pt";
  const PickleDocument doc = unpickle(loop.data(), loop.size(), options);
  const PyTorchCheckpoint ckpt = checkpoint_from_pickle(doc.root(), "loop.pt");
  CHECK(ckpt.layout == "pickled module Net");
  CHECK(ckpt.tensors.empty());
  CHECK(ckpt.skipped == std::vector<std::string>{"p", "again"});
}

TEST_CASE("every prefix and every single-byte change of a small archive loads or fails with InputError") {
  TempDir dir;
  write_archive(
      dir.file("small.pt"),
      {{"data.pkl", state_dict_pickle(4, {2, 2}, {2, 1})}, {"byteorder", "little"}, {"data/0", floats({1, 2, 3, 4})}});
  const std::string whole = read_bytes(dir.file("small.pt"));
  REQUIRE(whole.size() > 500);
  CHECK(read_pytorch_checkpoint(whole.data(), whole.size(), "m.pt").tensors.at("w").numel() == 4);
  for (size_t n = 0; n < whole.size(); ++n) {
    INFO(n);
    CHECK_THROWS_AS(read_pytorch_checkpoint(whole.data(), n, "m.pt"), InputError);
  }
  for (size_t i = 0; i < whole.size(); ++i) {
    std::string changed = whole;
    changed[i] = static_cast<char>(changed[i] ^ 0x5a);
    INFO(i);
    try {
      read_pytorch_checkpoint(changed.data(), changed.size(), "m.pt");
    } catch (const InputError&) {
    }
  }
}
