#pragma once
// The live progress of a training epoch, in Ultralytics' columns: epoch, memory, the three losses, instances,
// image size, then done/total with elapsed and remaining time. On a terminal the line is rewritten in place;
// elsewhere (a log file) it is printed on the first batch, every 10 seconds, and at the end.
#include <array>
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace revkit {

class ProgressLine {
 public:
  ProgressLine(std::ostream& out, std::string epoch, int64_t total);
  // After `done` batches, with the mean losses so far (the head's three parts) and the batch's instance count.
  void update(int64_t done, const double losses[3], int64_t instances, int64_t size);
  // The column titles above a run of progress lines, with the head's loss names.
  static void print_header(std::ostream& out,
                           const std::array<std::string, 3>& losses = {"box_loss", "obj_loss", "cls_loss"});

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream& out_;
  std::string epoch_;
  int64_t total_;
  Clock::time_point start_, last_print_;
  bool tty_ = false;
};

// mm:ss, or h:mm:ss from an hour on.
std::string format_duration(double seconds);

// A stream that discards what it is given (a quiet run, or a rank other than 0).
std::ostream& null_stream();

}  // namespace revkit
