#include "engine/launcher.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <sstream>

using namespace revkit;

namespace {

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
  const std::string same = "revkit: error: coco8.yaml: --batch 2 over 2 ranks, the epoch's last: a training batch";
  // Rank 2 was stopped before it could report; rank 3 found something else first.
  const std::vector<std::string> texts = {same + "\n", same + "\n", "", "revkit: error: rank 3's own\n" + same + "\n"};
  CHECK(distinct_error_lines(texts) == std::vector<std::string>{same, "revkit: error: rank 3's own"});
  CHECK(distinct_error_lines({texts[3], texts[0]}) == std::vector<std::string>{"revkit: error: rank 3's own", same});
  CHECK(distinct_error_lines({texts[2]}).empty());
}

TEST_CASE("an error line goes to the launcher's channel in a rank, and to stderr elsewhere") {
  const std::string line = "revkit: error: --imgsz must be positive, got 0\n";
  ::unsetenv("REVKIT_RANK_ERROR_FD");
  CHECK(stderr_of([&] { print_error_line(line); }) == line);
  CHECK(stderr_of([&] { print_error_line(""); }).empty());

  const int channel = make_rank_error_channel();
  REQUIRE(channel >= 0);
  ::setenv("REVKIT_RANK_ERROR_FD", std::to_string(channel).c_str(), 1);
  CHECK(stderr_of([&] { print_error_line(line); }).empty());
  CHECK(read_rank_error_channel(channel) == line);
  ::close(channel);

  // The channel gone, or the variable naming a descriptor that is not one (here a plain file): the line is not
  // lost, and nothing else is written to.
  CHECK(stderr_of([&] { print_error_line(line); }) == line);
  char path[] = "/tmp/revkit_launcher_XXXXXX";
  const int other = ::mkstemp(path);
  REQUIRE(other >= 0);
  ::setenv("REVKIT_RANK_ERROR_FD", std::to_string(other).c_str(), 1);
  CHECK(stderr_of([&] { print_error_line(line); }) == line);
  CHECK(read_rank_error_channel(other).empty());
  ::close(other);
  ::unlink(path);
  ::setenv("REVKIT_RANK_ERROR_FD", "7x", 1);
  CHECK(stderr_of([&] { print_error_line(line); }) == line);
  ::unsetenv("REVKIT_RANK_ERROR_FD");
}

TEST_CASE("a rank's error channel is read back whole, from its start, however long") {
  const int channel = make_rank_error_channel();
  REQUIRE(channel >= 0);
  const std::string long_text(10000, 'x');
  REQUIRE(::write(channel, long_text.data(), long_text.size()) == static_cast<ssize_t>(long_text.size()));
  CHECK(read_rank_error_channel(channel) == long_text);
  CHECK(read_rank_error_channel(channel) == long_text);  // pread: the offset does not move
  ::close(channel);
}
