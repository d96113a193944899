// The shared-library entry point of the RevNet plugin.
#include "plugins/revnet/revnet.h"

extern "C" __attribute__((visibility("default"))) const RevkitPlugin* revkit_plugin_entry() {
  return &revkit::revnet_plugin();
}
