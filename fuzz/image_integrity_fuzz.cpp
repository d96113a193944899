// Fuzz target: the JPEG and PNG end checks. Any bytes must get an answer, never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "data/image_integrity.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string problem = revkit::truncation_problem(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!problem.empty() && problem != "truncated JPEG (no end-of-image marker)" &&
      problem != "truncated PNG (no IEND chunk)")
    std::abort();
  return 0;
}
