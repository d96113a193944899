#include "core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "core/error.h"

namespace revkit {

std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_color_mt("revkit");
    l->set_pattern("revkit: %^%l%$: %v");
    l->set_level(spdlog::level::info);
    return l;
  }();
  return instance;
}

void set_log_level(const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    throw InputError("unknown log level '" + level + "' (expected debug, info, warn, error or off)");
  logger()->set_level(parsed);
}

}  // namespace revkit
