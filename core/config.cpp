#include "core/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace revkit {
namespace {

nlohmann::json scalar_to_json(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted: always a string
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(text.c_str(), &end, 10);
  if (end && *end == '\0' && errno == 0) return static_cast<int64_t>(i);
  const double d = std::strtod(text.c_str(), &end);
  if (end && *end == '\0' && text.find_first_of("0123456789") != std::string::npos) return d;
  return text;
}

nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(node);
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(yaml_to_json(item));
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return out;
    }
  }
  return nullptr;
}

bool is_yaml_path(const std::string& path) {
  auto ends_with = [&](const char* ext) {
    const std::string e(ext);
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  return ends_with(".yaml") || ends_with(".yml");
}

}  // namespace

nlohmann::json parse_config_text(const std::string& text, const std::string& source, bool yaml) {
  if (yaml) {
    try {
      return yaml_to_json(YAML::Load(text));
    } catch (const YAML::Exception& e) {
      throw InputError(source, fmt::format("YAML syntax error at line {}, column {}: {}", e.mark.line + 1,
                                           e.mark.column + 1, e.msg));
    }
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann reports a byte offset; turn it into line and column.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string what = e.what();
    const auto colon = what.rfind(": ");
    throw InputError(source, fmt::format("JSON syntax error at line {}, column {}: {}", line, column,
                                         colon == std::string::npos ? what : what.substr(colon + 2)));
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
    std::string what = e.what();
    const auto bracket = what.find("] ");
    throw InputError(source, "JSON error: " + (bracket == std::string::npos ? what : what.substr(bracket + 2)));
  }
}

nlohmann::json load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_config_text(buffer.str(), path, is_yaml_path(path));
}

}  // namespace revkit
