#include "plugins/loader.h"

#include <dlfcn.h>
#include <elf.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

// The loader maps a shared library's segments as its ELF headers describe them: in a file cut short, touching one
// past the end stops the process with SIGBUS. Refused here instead, from the headers' own sizes (64-bit ELF, the
// only kind this build loads; anything else is left to dlopen's own error).
void check_not_truncated(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr header{};
  if (!in.read(reinterpret_cast<char*>(&header), sizeof(header)) ||
      std::string(reinterpret_cast<const char*>(header.e_ident), SELFMAG) != ELFMAG ||
      header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_phentsize != sizeof(Elf64_Phdr))
    return;
  in.seekg(0, std::ios::end);
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  uint64_t needed = header.e_phoff + uint64_t{header.e_phnum} * sizeof(Elf64_Phdr);
  if (header.e_shoff) needed = std::max(needed, header.e_shoff + uint64_t{header.e_shnum} * header.e_shentsize);
  if (needed <= size) {
    in.seekg(static_cast<std::streamoff>(header.e_phoff));
    for (int i = 0; i < header.e_phnum; ++i) {
      Elf64_Phdr segment{};
      if (!in.read(reinterpret_cast<char*>(&segment), sizeof(segment))) break;
      needed = std::max(needed, segment.p_offset + segment.p_filesz);
    }
  }
  if (needed > size)
    throw InputError(path, "cannot load plugin: the file is cut short (its ELF headers describe " +
                               std::to_string(needed) + " bytes, it has " + std::to_string(size) + ")");
}

}  // namespace

const LoadedPlugin& load_plugin(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::error_code ec;
  const std::string canonical = std::filesystem::weakly_canonical(path, ec).string();
  for (const auto& p : plugins())
    if (p.path == canonical) return p;
  if (!std::filesystem::exists(path)) throw InputError(path, "plugin not found");
  check_not_truncated(canonical);
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
