// The backbone registry and the plugin interface through which every backbone, built-in or loaded, is added.
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <new>
#include <set>

#include "backbones/backbone.h"
#include "backbones/plugin_api.h"
#include "backbones/revcol.h"
#include "core/error.h"

namespace revkit {
namespace {

RevColOptions apply(RevColOptions o, const BackboneSettings& s) {
  if (s.columns) o.columns(*s.columns);
  if (s.kernel_size) o.kernel_size(*s.kernel_size);
  if (s.drop_path) o.drop_path(*s.drop_path);
  if (s.alpha_init) o.alpha_init(*s.alpha_init);
  return o.column_options(s.column_options(o.column_options()));
}

void register_revcol(PluginRegistrar* registrar) {
  for (const auto& variant : revcol_variant_names()) {
    const auto o = revcol_variant(variant);
    registrar->add_backbone("revcol_" + variant,
                            fmt::format("RevCol-{}{} reversible column backbone ({} columns), strides 4-32",
                                        static_cast<char>(std::toupper(variant[0])), variant.substr(1), o.columns()),
                            [variant](const BackboneSettings& settings) -> std::shared_ptr<Backbone> {
                              return std::make_shared<RevColImpl>(apply(revcol_variant(variant), settings));
                            });
  }
}

const RevkitPlugin kRevColPlugin = {REVKIT_PLUGIN_API_VERSION, "revcol", "1.0", &register_revcol};

Registry<BackboneFactory>& registry_instance() {
  static Registry<BackboneFactory> registry("backbone");
  return registry;
}

}  // namespace

reversible::ColumnOptions BackboneSettings::column_options(reversible::ColumnOptions o) const {
  if (memory_mode) o.memory_mode(*memory_mode);
  if (store_every) o.store_every(*store_every);
  if (keep_columns) o.keep_columns(*keep_columns);
  if (keep_matmuls) o.keep_matmuls(*keep_matmuls);
  if (keep_levels) o.keep_levels(*keep_levels);
  if (memory_budget_mb) o.memory_budget_mb(*memory_budget_mb);
  if (recompute_chunks) o.recompute_chunks(*recompute_chunks);
  if (alpha_floor) o.alpha_floor(*alpha_floor);
  return o;
}

const std::vector<const RevkitPlugin*>& builtin_plugins() {
  static const std::vector<const RevkitPlugin*> plugins = {&kRevColPlugin};
  return plugins;
}

void PluginRegistrar::add_backbone(const std::string& name, const std::string& description, BackboneFactory factory) {
  registry_instance().add(name, description, std::move(factory));
  added_.push_back(name);
}

namespace {

bool is_out_of_memory(const std::exception& e) {
  return dynamic_cast<const std::bad_alloc*>(&e) || dynamic_cast<const c10::OutOfMemoryError*>(&e);
}

// Registers `plugin`'s backbones. A plugin's own exception is its author's mistake, named with the plugin; a
// built-in's is revkit's, and goes on as it is.
std::vector<std::string> add_plugin(const RevkitPlugin& plugin, const std::string& source, bool builtin = false) {
  if (plugin.api_version != REVKIT_PLUGIN_API_VERSION)
    throw InputError(source,
                     fmt::format("plugin API version {}, but this revkit speaks version {} (rebuild the plugin)",
                                 plugin.api_version, REVKIT_PLUGIN_API_VERSION));
  if (!plugin.name || !plugin.register_plugin)
    throw InputError(source, "plugin entry has no name or register function");
  PluginRegistrar registrar(plugin.name);
  try {
    plugin.register_plugin(&registrar);
  } catch (const InputError& e) {  // a taken name, from add_backbone
    throw InputError(source, std::string("plugin '") + plugin.name + "': " + e.what());
  } catch (const std::exception& e) {
    if (builtin || is_out_of_memory(e)) throw;
    throw InputError(source, std::string("plugin '") + plugin.name + "': " + first_line(e));
  }
  return registrar.added();
}

std::set<std::string>& builtin_backbones() {
  static std::set<std::string> names;
  return names;
}

}  // namespace

std::vector<std::string> register_plugin(const RevkitPlugin& plugin, const std::string& source) {
  backbone_registry();  // the built-in names are taken first: a plugin that reuses one is the one named
  return add_plugin(plugin, source);
}

Registry<BackboneFactory>& backbone_registry() {
  static bool builtins_registered = [] {
    for (const RevkitPlugin* p : builtin_plugins())
      for (const auto& name : add_plugin(*p, std::string("built-in plugin ") + p->name, /*builtin=*/true))
        builtin_backbones().insert(name);
    return true;
  }();
  (void)builtins_registered;
  return registry_instance();
}

std::shared_ptr<Backbone> make_backbone(const std::string& name, const BackboneSettings& settings) {
  const BackboneFactory& factory = backbone_registry().factory(name);
  std::shared_ptr<Backbone> backbone;
  try {
    backbone = factory(settings);
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    // LibTorch's checks on a backbone's settings are the user's; anything else is revkit's own in a built-in, and
    // a plugin author's in a plugin. Running out of memory is neither.
    if (is_out_of_memory(e) || (!dynamic_cast<const c10::Error*>(&e) && builtin_backbones().count(name))) throw;
    throw InputError("backbone " + name + ": " + first_line(e));
  }
  if (!backbone) throw InputError("backbone " + name + ": its factory returned no backbone");
  return backbone;
}

}  // namespace revkit
