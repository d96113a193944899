#include "plugins/loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <list>
#include <mutex>
#include <sstream>

#include "backbones/plugin_api.h"
#include "core/error.h"

namespace revkit {
namespace {

std::mutex g_mutex;
std::list<LoadedPlugin>& plugins() {
  static std::list<LoadedPlugin> list;  // a list: references stay valid as it grows
  return list;
}

}  // namespace

const LoadedPlugin& load_plugin(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::error_code ec;
  const std::string canonical = std::filesystem::weakly_canonical(path, ec).string();
  for (const auto& p : plugins())
    if (p.path == canonical) return p;
  if (!std::filesystem::exists(path)) throw InputError(path, "plugin not found");
  void* handle = dlopen(canonical.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    throw InputError(path, std::string("cannot load plugin: ") + (why ? why : "unknown error"));
  }
  dlerror();
  auto entry = reinterpret_cast<RevkitPluginEntry>(dlsym(handle, REVKIT_PLUGIN_ENTRY_SYMBOL));
  if (!entry) {
    dlclose(handle);
    throw InputError(path, "not a revkit plugin: it has no " REVKIT_PLUGIN_ENTRY_SYMBOL "() entry point");
  }
  const RevkitPlugin* info = entry();
  if (!info) {
    dlclose(handle);
    throw InputError(path, REVKIT_PLUGIN_ENTRY_SYMBOL "() returned nothing");
  }
  // Kept open from here on: the registered factories live in the library.
  LoadedPlugin loaded;
  loaded.path = canonical;
  loaded.backbones = register_plugin(*info, path);
  loaded.name = info->name;
  loaded.version = info->version ? info->version : "";
  plugins().push_back(std::move(loaded));
  return plugins().back();
}

void load_plugins_from_environment() {
  const char* list = std::getenv("REVKIT_PLUGINS");
  if (!list) return;
  std::stringstream paths(list);
  std::string path;
  while (std::getline(paths, path, ':'))
    if (!path.empty()) load_plugin(path);
}

std::vector<LoadedPlugin> loaded_plugins() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return {plugins().begin(), plugins().end()};
}

}  // namespace revkit
