#pragma once
// User data quoted in a one-line error message, kept short and printable: a value from a config or a file header
// can be megabytes long, nested past what a recursive printer survives, or raw bytes.
#include <nlohmann/json.hpp>

#include <string>

namespace revkit {

// `value` as JSON text, at most about `max_chars` long: strings cut, lists and objects shown three levels deep and
// until the text is long enough, "..." where something was left out.
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 80);

// Whether `value` is an integer that int64_t holds (JSON's unsigned integers go up to 2^64 - 1, and would wrap).
bool fits_int64(const nlohmann::json& value);

// `text` with every byte outside printable ASCII written as \xNN, cut to `max_chars` with "..." after.
std::string printable(const std::string& text, size_t max_chars = 200);

}  // namespace revkit
