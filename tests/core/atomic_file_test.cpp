#include "core/atomic_file.h"

#include <doctest/doctest.h>

#include <sys/stat.h>
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

TEST_CASE("atomic file: a symbolic link is written through to its target; a pipe or a folder is refused") {
  const fs::path dir = fs::temp_directory_path() / ("revkit_af_link_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "real");
  fs::create_symlink("real/target.json", dir / "link.json");
  revkit::write_file_atomically((dir / "link.json").string(), "through the link");
  // Written through: the link stays a link, and its target holds the text.
  CHECK(fs::is_symlink(dir / "link.json"));
  std::ifstream in(dir / "real" / "target.json");
  CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "through the link");
  CHECK(std::distance(fs::directory_iterator(dir / "real"), fs::directory_iterator()) == 1);  // no temp file left

  REQUIRE(::mkfifo((dir / "pipe").c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(revkit::write_file_atomically((dir / "pipe").string(), "x"),
                       doctest::Contains("pipe: cannot write: it exists and is not a regular file"),
                       revkit::InputError);
  CHECK(fs::is_fifo(dir / "pipe"));
  CHECK_THROWS_WITH_AS(revkit::write_file_atomically((dir / "real").string(), "x"),
                       doctest::Contains("cannot write: it exists and is not a regular file"), revkit::InputError);
  fs::remove_all(dir);
}
