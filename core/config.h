#pragma once
// Config files: JSON, or YAML converted to the same JSON structure, so every consumer reads one form.
#include <nlohmann/json.hpp>

#include <string>

namespace revkit {

// Reads a .yaml/.yml (through yaml-cpp) or .json file. YAML scalars become numbers, booleans or null where they
// read as such unquoted; quoted scalars stay strings. Throws InputError naming the file, line and column of a
// syntax error.
nlohmann::json load_config_file(const std::string& path);

// The same for text already in memory; `source` names it in errors. `yaml` selects the parser.
nlohmann::json parse_config_text(const std::string& text, const std::string& source, bool yaml);

}  // namespace revkit
