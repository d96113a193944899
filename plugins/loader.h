#pragma once
// Loading plugin shared libraries (see backbones/plugin_api.h): from `--plugin PATH` and from the REVKIT_PLUGINS
// environment variable (paths separated by ':'). A loaded library stays open for the life of the process.
#include <string>
#include <vector>

namespace revkit {

struct LoadedPlugin {
  std::string path, name, version;
  std::vector<std::string> backbones;  // the names it registered
};

// Loads one plugin and registers its backbones. Throws InputError ("<path>: ...") for a missing file, a
// library that cannot be opened or has no revkit_plugin_entry, an API version mismatch, or a name that is
// already registered. Loading the same path twice is a no-op.
const LoadedPlugin& load_plugin(const std::string& path);
// Every path in REVKIT_PLUGINS, in order.
void load_plugins_from_environment();
// Plugins loaded so far, in load order.
std::vector<LoadedPlugin> loaded_plugins();

}  // namespace revkit
