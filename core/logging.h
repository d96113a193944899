#pragma once
// revkit's logger: spdlog, to stderr, "revkit: <level>: <message>" for warnings and errors.
#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace revkit {

std::shared_ptr<spdlog::logger> logger();
// "debug", "info", "warn", "error", "off"; throws InputError for anything else.
void set_log_level(const std::string& level);

}  // namespace revkit
