#include "core/error.h"

#include <c10/util/Exception.h>
#include <doctest/doctest.h>

#include <filesystem>
#include <sstream>
#include <stdexcept>

using namespace revkit;

TEST_CASE("exit codes say what happened: bad input 2, a run that stopped itself 1, a bug 3") {
  auto run = [](const std::function<int()>& body, std::string* line) {
    std::ostringstream err;
    const int code = run_reporting_errors(body, err);
    *line = err.str();
    return code;
  };
  std::string line;
  CHECK(run([] { return 0; }, &line) == 0);
  CHECK(line.empty());
  CHECK(run([] { return 1; }, &line) == 1);  // a check beyond tolerance returns 1 itself
  CHECK(run([]() -> int { throw InputError("data.yaml", "'val' is missing"); }, &line) == 2);
  CHECK(line == "revkit: error: data.yaml: 'val' is missing\n");
  CHECK(run([]() -> int { throw RunStoppedError("3 non-finite losses in a row"); }, &line) == 1);
  CHECK(line == "revkit: error: 3 non-finite losses in a row\n");
  CHECK(run(
            []() -> int {
              TORCH_CHECK(false, "shapes differ");
              return 0;
            },
            &line) == 3);
  CHECK(line.rfind("revkit: internal error: shapes differ", 0) == 0);
  CHECK(std::count(line.begin(), line.end(), '\n') == 1);  // one line, no backtrace
  CHECK(run(
            []() -> int {
              (void)std::filesystem::status(std::string(300, 'a') + ".yaml");
              return 0;
            },
            &line) == 2);
  // The path the file system refused, and why, on one line.
  CHECK(line == "revkit: error: " + std::string(300, 'a') + ".yaml: File name too long\n");
  CHECK(run([]() -> int { throw std::logic_error("a bug"); }, &line) == 3);
  CHECK(line == "revkit: internal error: a bug\n");
}
