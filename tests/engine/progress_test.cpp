#include "engine/progress.h"

#include <doctest/doctest.h>

#include <sstream>

using namespace revkit;

TEST_CASE("progress lines away from a terminal: the first batch and the last, with Ultralytics' columns") {
  std::ostringstream out;
  ProgressLine::print_header(out);
  ProgressLine line(out, "3/10", 4);
  const double losses[3] = {0.1234, 0.05, 0.0199};
  for (int64_t done = 1; done <= 4; ++done) line.update(done, losses, 12, 320);
  const std::string text = out.str();
  CHECK(text.rfind("     Epoch      RSS   box_loss   obj_loss   cls_loss  Instances   Size\n", 0) == 0);
  CHECK(std::count(text.begin(), text.end(), '\n') == 3);  // header, batch 1, batch 4
  CHECK(text.find("      3/10") != std::string::npos);
  CHECK(text.find("    0.1234     0.0500     0.0199         12    320:  25% 1/4 [") != std::string::npos);
  CHECK(text.find(" 100% 4/4 [") != std::string::npos);
}

TEST_CASE("durations as mm:ss, and h:mm:ss from an hour") {
  CHECK(format_duration(0) == "00:00");
  CHECK(format_duration(75.9) == "01:15");
  CHECK(format_duration(3725) == "1:02:05");
  CHECK(format_duration(-3) == "00:00");
}

TEST_CASE("the header names the head's losses") {
  std::ostringstream out;
  ProgressLine::print_header(out, {"box_loss", "cls_loss", "dfl_loss"});
  CHECK(out.str() == "     Epoch      RSS   box_loss   cls_loss   dfl_loss  Instances   Size\n");
}
