#include "core/safetensors.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>

#include <unistd.h>
#include <cstdio>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;
using namespace revkit;

namespace {
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("revkit_st_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i, n >>= 8) out.put(static_cast<char>(n & 0xff));
  out << header << data;
}
}  // namespace

TEST_CASE("safetensors round trip of every dtype, with metadata") {
  TempDir dir;
  std::map<std::string, at::Tensor> tensors;
  at::Tensor base = at::arange(-3, 3).view({2, 3});
  for (auto dtype : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt, at::kShort, at::kChar})
    tensors[std::string("t_") + c10::toString(dtype)] = base.to(dtype);
  tensors["u8"] = at::arange(250, 256).to(at::kByte);
  tensors["bool"] = at::tensor({1, 0, 1}).to(at::kBool);
  tensors["scalar"] = at::tensor(3.5);
  tensors["empty"] = at::zeros({0, 4});
  tensors["strided"] = at::arange(12.0).view({3, 4}).t();  // written contiguous
  write_safetensors(dir.file("a.safetensors"), tensors, {{"format", "pt"}, {"note", "hello"}});
  const Safetensors back = read_safetensors(dir.file("a.safetensors"));
  CHECK(back.metadata.at("note") == "hello");
  REQUIRE(back.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const at::Tensor& got = back.tensors.at(name);
    CHECK((got.scalar_type() == t.scalar_type()));
    CHECK(got.sizes() == t.sizes());
    CHECK(at::equal(got, t));
  }
  CHECK(safetensors_dtype_name(at::kBFloat16) == "BF16");
  CHECK_THROWS_AS(safetensors_dtype_name(at::kComplexFloat), InputError);
  // Nothing but the file itself is left behind.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("safetensors reads the reference fixtures' layout") {
  const auto f = read_safetensors(std::string(REVKIT_TEST_FIXTURES) + "/revcol_mini_f64.safetensors");
  CHECK(f.metadata.at("num_subnet") == "3");
  CHECK(f.tensors.at("input").sizes() == at::IntArrayRef({2, 3, 64, 64}));
  CHECK((f.tensors.at("param/stem.0.weight").scalar_type() == at::kDouble));
}

TEST_CASE("safetensors errors name the file and the problem") {
  TempDir dir;
  const std::string good = dir.file("good.safetensors");
  write_safetensors(good, {{"w", at::ones({4, 4})}});
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string cut = dir.file("cut.safetensors");
  {
    std::ofstream out(cut, std::ios::binary);
    out << bytes.substr(0, bytes.size() - 10);
  }
  CHECK_THROWS_WITH_AS(read_safetensors(cut),
                       doctest::Contains("cut.safetensors: truncated: tensor 'w' ends at byte 64"), InputError);
  {
    std::ofstream out(cut, std::ios::binary);
    out << bytes.substr(0, 5);
  }
  CHECK_THROWS_WITH(read_safetensors(cut), doctest::Contains("truncated: 5 bytes"));
  {
    std::ofstream out(cut, std::ios::binary);
    out << bytes.substr(0, 20);
  }
  CHECK_THROWS_WITH(read_safetensors(cut), doctest::Contains("truncated: the header claims"));
  CHECK_THROWS_WITH(read_safetensors(dir.file("none.safetensors")),
                    doctest::Contains("none.safetensors: cannot open file"));

  const std::string lie = dir.file("lie.safetensors");
  write_raw(lie, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}})", std::string(8, '\0'));
  CHECK_THROWS_WITH(read_safetensors(lie),
                    doctest::Contains("tensor 'w': data_offsets span 8 bytes but dtype F32 and shape [4] need 16"));
  write_raw(
      lie,
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, '\0'));
  CHECK_THROWS_WITH(read_safetensors(lie),
                    doctest::Contains("inconsistent header: tensor 'v' starts at byte 4, expected 8 (overlap)"));
  write_raw(lie, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(12, '\0'));
  CHECK_THROWS_WITH(read_safetensors(lie), doctest::Contains("tensors cover 8 bytes of a data section of 12"));
  write_raw(lie, R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  CHECK_THROWS_WITH(read_safetensors(lie), doctest::Contains("unsupported dtype 'Q4'"));
  write_raw(lie, R"({"w":{"dtype":"F32","shape":[2],)", std::string(8, '\0'));
  CHECK_THROWS_WITH(read_safetensors(lie), doctest::Contains("header is not valid JSON"));
  write_raw(lie, R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0'));
  CHECK_THROWS_WITH(read_safetensors(lie), doctest::Contains("has an entry that is not a size"));
  // 2^61 float64 elements: 2^64 bytes, which wrapped around to a span of 0 and then asked for the memory.
  write_raw(lie, R"({"w":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}})", "");
  CHECK_THROWS_WITH(read_safetensors(lie), doctest::Contains("shape [2305843009213693952] is too large"));
}

TEST_CASE("a failed write leaves nothing behind") {
  CHECK_THROWS_AS(write_safetensors("/nonexistent-dir/x.safetensors", {{"w", at::ones({2})}}), InputError);
}
