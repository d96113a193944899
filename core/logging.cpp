#include "core/logging.h"

#include <algorithm>
#include <iostream>

#include "core/error.h"

namespace revkit {
namespace {
const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warning";
    case LogLevel::Error: return "error";
    case LogLevel::Off: break;
  }
  return "off";
}
}  // namespace

void Logger::add_sink(std::ostream* sink) {
  std::lock_guard<std::mutex> lock(mutex_);
  sinks_.push_back(sink);
}

void Logger::remove_sink(std::ostream* sink) {
  std::lock_guard<std::mutex> lock(mutex_);
  sinks_.erase(std::remove(sinks_.begin(), sinks_.end(), sink), sinks_.end());
}

void Logger::write(LogLevel level, const std::string& message) {
  const std::string line = fmt::format("revkit: {}: {}\n", level_name(level), message);
  std::lock_guard<std::mutex> lock(mutex_);
  std::cerr << line << std::flush;
  for (auto* sink : sinks_) *sink << line;
}

Logger* logger() {
  static Logger instance;
  return &instance;
}

void set_log_level(const std::string& level) {
  for (auto l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error, LogLevel::Off})
    if (level == level_name(l) || (l == LogLevel::Warn && level == "warn")) return logger()->set_level(l);
  throw InputError("unknown log level '" + level + "' (expected debug, info, warn, error or off)");
}

}  // namespace revkit
