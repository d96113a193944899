#include "core/process_memory.h"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>
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

TEST_CASE("CPU seconds count the work this process does, and not the time it sleeps") {
  const double start = cpu_seconds();
  CHECK(start > 0);
  volatile double sink = 0;
  const auto spin_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < spin_until) sink = sink + 1;
  const double after_spin = cpu_seconds();
  CHECK(after_spin - start > 0.1);  // 0.3 s of wall time on one thread, of which a loaded machine gives us part
  CHECK(after_spin - start < 1.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(cpu_seconds() - after_spin < 0.1);
}
