#include "core/process_memory.h"

#include <doctest/doctest.h>

#include <vector>

using namespace revkit;

TEST_CASE("resident memory grows by what is touched, and the peak never falls") {
  const double before = current_rss_mb();
  CHECK(before > 1);
  std::vector<char> block(64 << 20, 1);  // 64 MiB, every page written
  const double during = current_rss_mb();
  CHECK(during - before > 60);
  CHECK(peak_rss_mb() >= during - 1);
  CHECK(block[12345] == 1);
}
