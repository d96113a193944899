#pragma once
// The plugin interface: a shared library exports one C function,
//
//     extern "C" const RevkitPlugin* revkit_plugin_entry(void);
//
// returning {api_version, name, version, register_plugin}. The loader checks the version, then calls
// register_plugin with a registrar through which the plugin adds its backbones. Built-in backbones (RevCol first)
// are registered through the same interface, and a plugin's source can be linked in statically by calling
// register_plugin(&its_info) instead of loading it.
#include <string>
#include <vector>

#include "backbones/backbone.h"

#define REVKIT_PLUGIN_API_VERSION 3  // 2: factories take BackboneSettings; 3: kept columns and a memory budget in them
#define REVKIT_PLUGIN_ENTRY_SYMBOL "revkit_plugin_entry"

namespace revkit {

class PluginRegistrar {
 public:
  explicit PluginRegistrar(std::string plugin) : plugin_(std::move(plugin)) {}
  // Adds a backbone usable by name from config rows (row 0) and `revkit check/bench --backbone`. Throws
  // InputError when the name is taken.
  void add_backbone(const std::string& name, const std::string& description, BackboneFactory factory);
  const std::vector<std::string>& added() const { return added_; }
  const std::string& plugin() const { return plugin_; }

 private:
  std::string plugin_;
  std::vector<std::string> added_;
};

}  // namespace revkit

extern "C" {
struct RevkitPlugin {
  int api_version;  // REVKIT_PLUGIN_API_VERSION at the plugin's build
  const char* name;
  const char* version;
  void (*register_plugin)(revkit::PluginRegistrar* registrar);
};
typedef const RevkitPlugin* (*RevkitPluginEntry)(void);
}

namespace revkit {

// Checks the API version and registers a plugin's backbones; returns what it added. Throws InputError for a
// version mismatch or a name already registered (`source` names the plugin in the message).
std::vector<std::string> register_plugin(const RevkitPlugin& plugin, const std::string& source);

// The plugins compiled into revkit, registered on first use of the backbone registry: RevCol.
const std::vector<const RevkitPlugin*>& builtin_plugins();

}  // namespace revkit
