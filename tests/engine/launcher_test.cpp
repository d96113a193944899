#include "engine/launcher.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace revkit;
namespace fs = std::filesystem;

namespace {

fs::path fresh_folder(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read(const fs::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What `body` printed on std::cerr.
template <typename F>
std::string stderr_of(F body) {
  std::ostringstream captured;
  std::streambuf* previous = std::cerr.rdbuf(captured.rdbuf());
  body();
  std::cerr.rdbuf(previous);
  return captured.str();
}

}  // namespace

TEST_CASE("the ranks' error lines, each distinct one once, in the order first seen") {
  const fs::path dir = fresh_folder("revkit_launcher_lines");
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string same = "revkit: error: coco8.yaml: --batch 2 over 2 ranks, the epoch's last: a training batch";
  // Rank 2 was stopped before it could report; rank 3 found something else first.
  const std::vector<std::string> files = {write("rank0", same + "\n"), write("rank1", same + "\n"),
                                          (dir / "rank2").string(),
                                          write("rank3", "revkit: error: rank 3's own\n" + same + "\n")};
  CHECK(distinct_error_lines(files) == std::vector<std::string>{same, "revkit: error: rank 3's own"});
  CHECK(distinct_error_lines({files[3], files[0]}) == std::vector<std::string>{"revkit: error: rank 3's own", same});
  CHECK(distinct_error_lines({files[2]}).empty());
  fs::remove_all(dir);
}

TEST_CASE("an error line goes to the launcher's file in a rank, and to stderr elsewhere or when the file fails") {
  const fs::path dir = fresh_folder("revkit_launcher_print");
  const std::string line = "revkit: error: --imgsz must be positive, got 0\n";
  ::unsetenv("REVKIT_RANK_ERROR_FILE");
  CHECK(stderr_of([&] { print_error_line(line); }) == line);
  CHECK(stderr_of([&] { print_error_line(""); }).empty());

  ::setenv("REVKIT_RANK_ERROR_FILE", (dir / "rank1").c_str(), 1);
  CHECK(stderr_of([&] { print_error_line(line); }).empty());
  CHECK(read(dir / "rank1") == line);

  // The launcher's folder gone: the line is not lost.
  ::setenv("REVKIT_RANK_ERROR_FILE", (dir / "gone" / "rank1").c_str(), 1);
  CHECK(stderr_of([&] { print_error_line(line); }) == line);
  ::unsetenv("REVKIT_RANK_ERROR_FILE");
  fs::remove_all(dir);
}
