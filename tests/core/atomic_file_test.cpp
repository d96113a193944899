#include "core/atomic_file.h"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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

TEST_CASE("atomic file: the bytes have no name in the folder until commit, so a killed process leaves nothing") {
  const fs::path dir = fs::temp_directory_path() / ("revkit_af_unnamed_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const int probe = ::open(dir.c_str(), O_TMPFILE | O_WRONLY, 0600);
  if (probe < 0) {
    MESSAGE("this file system has no unnamed files (O_TMPFILE): AtomicFile names its bytes from the start");
    fs::remove_all(dir);
    return;
  }
  ::close(probe);
  auto names = [&] {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    return out;
  };
  const std::string path = (dir / "f.txt").string();
  revkit::write_file_atomically(path, "old");
  {
    revkit::AtomicFile f(path);
    f.write("new");
    CHECK(names() == std::vector<std::string>{"f.txt"});  // nothing a SIGKILL now could leave behind
    f.commit();
  }
  CHECK(names() == std::vector<std::string>{"f.txt"});
  std::ifstream in(path);
  CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "new");
  // Made as fopen makes a file: read and write for whoever the umask allows.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  CHECK((fs::status(path).permissions() & fs::perms::all) == static_cast<fs::perms>(0666 & ~mask));
  fs::remove_all(dir);
}
