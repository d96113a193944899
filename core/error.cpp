#include "core/error.h"

#include <c10/util/Exception.h>

#include <filesystem>

namespace revkit {

std::string first_line(const std::exception& e) {
  const auto* torch_error = dynamic_cast<const c10::Error*>(&e);
  const std::string message = torch_error ? torch_error->what_without_backtrace() : e.what();
  return message.substr(0, message.find('\n'));
}

int run_reporting_errors(const std::function<int()>& body, std::ostream& err) {
  try {
    return body();
  } catch (const InputError& e) {
    err << "revkit: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const RunStoppedError& e) {
    err << "revkit: error: " << e.what() << "\n";
    return kExitCheckFailed;
  } catch (const std::filesystem::filesystem_error& e) {
    // The file system's answer about a path the user gave (a symlink loop, a name too long, a folder without
    // permission): the user's to fix, named with the path.
    if (e.path1().empty()) {  // no path to name (the working folder gone): the library's own words
      err << "revkit: error: " << first_line(e) << "\n";
    } else {
      err << "revkit: error: " << e.path1().string();
      if (!e.path2().empty()) err << " -> " << e.path2().string();
      err << ": " << e.code().message() << "\n";
    }
    return kExitBadInput;
  } catch (const std::exception& e) {  // what users give is checked before LibTorch sees it: this is a bug
    err << "revkit: internal error: " << first_line(e) << "\n";
    return kExitInternalError;
  }
}

}  // namespace revkit
