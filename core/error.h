#pragma once
// Error types. A user mistake (bad config, file, weights or command-line value) is an InputError: the CLI prints
// its one-line message and exits with code 2. Anything else escaping to the CLI is a bug in revkit.
#include <stdexcept>
#include <string>

namespace revkit {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
  // "<file>: <problem>", the form every file-related error takes.
  InputError(const std::string& file, const std::string& problem) : std::runtime_error(file + ": " + problem) {}
};

// A lookup of a name that no registry entry has.
class UnknownNameError : public InputError {
 public:
  using InputError::InputError;
};

}  // namespace revkit
