// Fuzz target: the YOLO label parser. Any text must parse, with bad rows reported, never throw or crash.
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "data/labels.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const revkit::ParsedLabels parsed = revkit::parse_yolo_labels(text, "fuzz.txt", 80);
  // What is kept is valid: five columns, classes in range.
  if (parsed.rows.dim() != 2 || parsed.rows.size(1) != 5) std::abort();
  return 0;
}
