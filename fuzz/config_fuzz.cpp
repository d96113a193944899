// Fuzz target: the model-config loader (YAML and JSON text). Any input must either parse or raise InputError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (bool yaml : {true, false}) {
    try {
      revkit::parse_config_text(text, "fuzz", yaml);
    } catch (const revkit::InputError&) {
    }
  }
  return 0;
}
