// Plugins that fail in the ways the loader must report: built only for tests.
#include "backbones/plugin_api.h"

#ifdef REVKIT_TEST_BAD_VERSION
static void register_nothing(revkit::PluginRegistrar*) {}
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  static const RevkitPlugin info = {999, "from-the-future", "9.9", &register_nothing};
  return &info;
}
#endif

#ifdef REVKIT_TEST_DUPLICATE
static void register_taken_name(revkit::PluginRegistrar* r) {
  r->add_backbone("revcol_tiny", "a second revcol_tiny",
                  [](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> { return nullptr; });
}
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  static const RevkitPlugin info = {REVKIT_PLUGIN_API_VERSION, "impostor", "0.1", &register_taken_name};
  return &info;
}
#endif

#ifdef REVKIT_TEST_FAULTY_FACTORIES
#include <stdexcept>
static void register_faulty(revkit::PluginRegistrar* r) {
  r->add_backbone("null_backbone", "a factory that returns no backbone",
                  [](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> { return nullptr; });
  r->add_backbone("throwing_backbone", "a factory that throws",
                  [](const revkit::BackboneSettings&) -> std::shared_ptr<revkit::Backbone> {
                    throw std::runtime_error("failed on purpose");
                  });
}
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  static const RevkitPlugin info = {REVKIT_PLUGIN_API_VERSION, "faulty", "0.1", &register_faulty};
  return &info;
}
#endif

#ifdef REVKIT_TEST_THROWING_REGISTRATION
#include <stdexcept>
static void register_throwing(revkit::PluginRegistrar*) { throw std::runtime_error("registration failed on purpose"); }
extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  static const RevkitPlugin info = {REVKIT_PLUGIN_API_VERSION, "thrower", "0.1", &register_throwing};
  return &info;
}
#endif
