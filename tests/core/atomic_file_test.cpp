#include "core/atomic_file.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;

TEST_CASE("atomic file: committed text replaces the old file; an uncommitted write leaves it untouched") {
  const fs::path dir = fs::temp_directory_path() / ("revkit_af_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "f.txt").string();
  revkit::write_file_atomically(path, "first");
  {
    revkit::AtomicFile f(path);
    f.write("second, never committed");
  }
  auto read = [&] {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  CHECK(read() == "first");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  revkit::write_file_atomically(path, "third");
  CHECK(read() == "third");
  CHECK_THROWS_WITH_AS(revkit::AtomicFile((dir / "no" / "f").string()), doctest::Contains("cannot write"),
                       revkit::InputError);
  fs::remove_all(dir);
}
