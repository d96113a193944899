#include "core/error.h"

#include <c10/util/Exception.h>

namespace revkit {

int run_reporting_errors(const std::function<int()>& body, std::ostream& err) {
  try {
    return body();
  } catch (const InputError& e) {
    err << "revkit: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const RunStoppedError& e) {
    err << "revkit: error: " << e.what() << "\n";
    return kExitCheckFailed;
  } catch (const c10::Error& e) {  // what users give is checked before LibTorch sees it: this is a bug
    const std::string message = e.what_without_backtrace();
    err << "revkit: internal error: " << message.substr(0, message.find('\n')) << "\n";
    return kExitInternalError;
  } catch (const std::exception& e) {
    err << "revkit: internal error: " << e.what() << "\n";
    return kExitInternalError;
  }
}

}  // namespace revkit
