#include "core/excerpt.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>

namespace revkit {
namespace {

constexpr int kExcerptDepth = 3;

// A string as JSON text, cut so that `out` stays within max_chars (at least a few characters are shown).
std::string quoted(const std::string& s, size_t max_chars, const std::string& out) {
  const size_t keep = std::max<size_t>(8, max_chars > out.size() ? max_chars - out.size() : 0);
  return s.size() <= keep ? nlohmann::json(s).dump() : nlohmann::json(s.substr(0, keep)).dump() + "...";
}

void append_excerpt(const nlohmann::json& value, int depth, size_t max_chars, std::string& out) {
  if (value.is_string()) {
    out += quoted(value.get_ref<const std::string&>(), max_chars, out);
    return;
  }
  if (!value.is_structured()) {
    out += value.dump();
    return;
  }
  const bool list = value.is_array();
  out += list ? '[' : '{';
  if (!value.empty() && depth >= kExcerptDepth) {
    out += "...";
  } else {
    bool first = true;
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!first) out += ", ";
      if (out.size() >= max_chars) {
        out += "...";
        break;
      }
      first = false;
      if (!list) out += quoted(it.key(), max_chars, out) + ": ";
      append_excerpt(it.value(), depth + 1, max_chars, out);
    }
  }
  out += list ? ']' : '}';
}

}  // namespace

std::string json_excerpt(const nlohmann::json& value, size_t max_chars) {
  std::string out;
  append_excerpt(value, 0, max_chars, out);
  return out;
}

bool fits_int64(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
  return value.is_number_integer();
}

std::string printable(const std::string& text, size_t max_chars) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max_chars) return out + "...";
    out += c >= 0x20 && c < 0x7f ? std::string(1, static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
  }
  return out;
}

}  // namespace revkit
