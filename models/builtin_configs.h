#pragma once
// The model configs of configs/, compiled into the library so a built-in name works from any directory.
#include <string>
#include <utility>
#include <vector>

namespace revkit {

// (name, YAML text), the name being the file name without ".yaml".
const std::vector<std::pair<std::string, std::string>>& builtin_configs();

}  // namespace revkit
