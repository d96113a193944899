#include "engine/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "core/process_memory.h"

namespace revkit {

ProgressLine::ProgressLine(std::ostream& out, std::string epoch, int64_t total)
    : out_(out), epoch_(std::move(epoch)), total_(total), start_(Clock::now()), last_print_(Clock::now()) {
  tty_ = &out == &std::cout && ::isatty(STDOUT_FILENO) != 0;
}

void ProgressLine::update(int64_t done, const double losses[3], int64_t instances, int64_t size) {
  const bool last = done == total_;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double per_it = done > 0 ? elapsed / done : 0;
  const std::string line = fmt::format(
      "{:>10} {:>8} {:>10.4f} {:>10.4f} {:>10.4f} {:>10} {:>6}: {:3.0f}% {}/{} [{}<{}, {}]", epoch_,
      fmt::format("{:.2f}G", current_rss_mb() / 1024.0), losses[0], losses[1], losses[2], instances, size,
      100.0 * done / total_, done, total_, format_duration(elapsed), format_duration(per_it * (total_ - done)),
      per_it >= 1 || per_it == 0 ? fmt::format("{:.2f}s/it", per_it) : fmt::format("{:.2f}it/s", 1 / per_it));
  const double since = std::chrono::duration<double>(Clock::now() - last_print_).count();
  if (tty_) {
    out_ << "\r" << line << (last ? "\n" : "") << std::flush;
  } else if (last || since > 10 || done == 1) {
    out_ << line << "\n" << std::flush;
    last_print_ = Clock::now();
  }
}

void ProgressLine::print_header(std::ostream& out, const std::array<std::string, 3>& losses) {
  out << fmt::format("{:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>6}\n", "Epoch", "RSS", losses[0], losses[1],
                     losses[2], "Instances", "Size");
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{:02}:{:02}", s / 60, s % 60);
}

std::ostream& null_stream() {
  static std::ostream sink(nullptr);
  return sink;
}

}  // namespace revkit
