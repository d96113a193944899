#pragma once
// revkit's logger: one line per message on stderr, "revkit: <level>: <message>", formatted with fmt only when
// the level is enabled. Thread-safe (loader workers and rank threads log too).
#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

namespace revkit {

enum class LogLevel { Debug, Info, Warn, Error, Off };

class Logger {
 public:
  template <typename... Args>
  void debug(fmt::format_string<Args...> format, Args&&... args) {
    log(LogLevel::Debug, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) {
    log(LogLevel::Info, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) {
    log(LogLevel::Warn, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(fmt::format_string<Args...> format, Args&&... args) {
    log(LogLevel::Error, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
    if (enabled(level)) write(level, fmt::format(format, std::forward<Args>(args)...));
  }

  bool enabled(LogLevel level) const { return level >= level_ && level != LogLevel::Off; }
  LogLevel level() const { return level_; }
  void set_level(LogLevel level) { level_ = level; }
  // Further streams that receive every line written (tests read warnings this way).
  void add_sink(std::ostream* sink);
  void remove_sink(std::ostream* sink);
  void write(LogLevel level, const std::string& message);

 private:
  std::atomic<LogLevel> level_{LogLevel::Info};
  std::mutex mutex_;
  std::vector<std::ostream*> sinks_;
};

Logger* logger();
// "debug", "info", "warn", "error", "off"; throws InputError for anything else.
void set_log_level(const std::string& level);

// Copies every log line into a stream for a scope.
class LogCapture {
 public:
  explicit LogCapture(std::ostream& out) : out_(&out) { logger()->add_sink(out_); }
  ~LogCapture() { logger()->remove_sink(out_); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

 private:
  std::ostream* out_;
};

}  // namespace revkit
