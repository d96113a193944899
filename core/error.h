#pragma once
// Error types, and the exit codes the CLI gives them. A user mistake (bad config, file, weights or command-line
// value) is an InputError: exit code 2. A run that stopped itself (a loss that stays non-finite, a rank that
// died) is a RunStoppedError: exit code 1, as for a check beyond tolerance. Anything else escaping to the CLI
// is a bug in revkit and is reported as an internal error, exit code 3.
#include <functional>
#include <ostream>
#include <stdexcept>
#include <string>

namespace revkit {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
  // "<file>: <problem>", the form every file-related error takes.
  InputError(const std::string& file, const std::string& problem) : std::runtime_error(file + ": " + problem) {}
};

// A run that ended itself before finishing, with why and what was kept.
class RunStoppedError : public std::runtime_error {
 public:
  explicit RunStoppedError(const std::string& message) : std::runtime_error(message) {}
};

// The CLI's exit codes.
enum ExitCode : int { kExitOk = 0, kExitCheckFailed = 1, kExitBadInput = 2, kExitInternalError = 3 };

// Runs `body` and returns its exit code; an exception becomes one line on `err` and its exit code:
// "revkit: error: <what>" for an InputError (2) or a RunStoppedError (1), "revkit: error: <path>: <reason>" for a
// file system error (2), "revkit: internal error: <what>" (3) for anything else, LibTorch's errors without their
// backtrace.
int run_reporting_errors(const std::function<int()>& body, std::ostream& err);

// The first line of an exception's message; for LibTorch's errors, without their backtrace.
std::string first_line(const std::exception& e);

// A lookup of a name that no registry entry has.
class UnknownNameError : public InputError {
 public:
  using InputError::InputError;
};

}  // namespace revkit
