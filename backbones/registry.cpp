// The backbone registry and the plugin interface through which every backbone, built-in or loaded, is added.
#include <fmt/format.h>

#include "backbones/backbone.h"
#include "backbones/plugin_api.h"
#include "backbones/revcol.h"
#include "core/error.h"

namespace revkit {
namespace {

RevColOptions apply(RevColOptions o, const BackboneArgs& a) {
  if (a.columns) o.columns(*a.columns);
  if (a.kernel_size) o.kernel_size(*a.kernel_size);
  if (a.drop_path) o.drop_path(*a.drop_path);
  if (a.alpha_init) o.alpha_init(*a.alpha_init);
  auto column = o.column_options();
  if (a.memory_mode) column.memory_mode(*a.memory_mode);
  if (a.store_every) column.store_every(*a.store_every);
  if (a.alpha_floor) column.alpha_floor(*a.alpha_floor);
  return o.column_options(column);
}

void register_revcol(PluginRegistrar* registrar) {
  for (const auto& variant : revcol_variant_names()) {
    const auto o = revcol_variant(variant);
    registrar->add_backbone(
        "revcol_" + variant,
        fmt::format("RevCol-{}{} reversible column backbone ({} columns), strides 4-32",
                    static_cast<char>(std::toupper(variant[0])), variant.substr(1), o.columns()),
        [variant](const BackboneArgs& args) -> std::shared_ptr<Backbone> {
          return std::make_shared<RevColImpl>(apply(revcol_variant(variant), args));
        });
  }
}

const RevkitPlugin kRevColPlugin = {REVKIT_PLUGIN_API_VERSION, "revcol", "1.0", &register_revcol};

Registry<BackboneFactory>& registry_instance() {
  static Registry<BackboneFactory> registry("backbone");
  return registry;
}

}  // namespace

const std::vector<const RevkitPlugin*>& builtin_plugins() {
  static const std::vector<const RevkitPlugin*> plugins = {&kRevColPlugin};
  return plugins;
}

void PluginRegistrar::add_backbone(const std::string& name, const std::string& description, BackboneFactory factory) {
  registry_instance().add(name, description, std::move(factory));
  added_.push_back(name);
}

std::vector<std::string> register_plugin(const RevkitPlugin& plugin, const std::string& source) {
  if (plugin.api_version != REVKIT_PLUGIN_API_VERSION)
    throw InputError(source, fmt::format("plugin API version {}, but this revkit speaks version {} (rebuild the plugin)",
                                         plugin.api_version, REVKIT_PLUGIN_API_VERSION));
  if (!plugin.name || !plugin.register_plugin) throw InputError(source, "plugin entry has no name or register function");
  PluginRegistrar registrar(plugin.name);
  try {
    plugin.register_plugin(&registrar);
  } catch (const InputError& e) {
    throw InputError(source, std::string("plugin '") + plugin.name + "': " + e.what());
  }
  return registrar.added();
}

Registry<BackboneFactory>& backbone_registry() {
  static bool builtins_registered = [] {
    for (const RevkitPlugin* p : builtin_plugins()) register_plugin(*p, std::string("built-in plugin ") + p->name);
    return true;
  }();
  (void)builtins_registered;
  return registry_instance();
}

}  // namespace revkit
