#include "plugins/loader.h"

#include <ATen/ATen.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "backbones/backbone.h"
#include "core/error.h"
#include "models/detection_model.h"

using namespace revkit;
namespace fs = std::filesystem;

TEST_CASE("loading the RevNet plugin registers its backbones, once") {
  const LoadedPlugin& p = load_plugin(REVKIT_REVNET_PLUGIN);
  CHECK(p.name == "revnet");
  CHECK(p.version == "1.0");
  CHECK(p.backbones == std::vector<std::string>{"revnet_tiny", "revnet_small"});
  CHECK(&load_plugin(REVKIT_REVNET_PLUGIN) == &p);
  CHECK(loaded_plugins().size() == 1);
  CHECK(backbone_registry().contains("revnet_tiny"));
  CHECK(find_layer("revnet_tiny"));

  // A model config row uses it like a built-in.
  const nlohmann::json cfg = {{"nc", 2},
                              {"anchors", {{10, 13, 16, 30}, {30, 61, 62, 45}}},
                              {"backbone", {{-1, 1, "revnet_tiny", nlohmann::json::array()}}},
                              {"head", {{-1, 1, "Conv", {64, 1, 1}}, {{3, -1}, 1, "Detect", {"nc", "anchors"}}}}};
  DetectionModel model(cfg, "revnet.json");
  CHECK(model->strides() == std::vector<double>{16, 32});
  auto outs = model->forward(at::randn({2, 3, 64, 64}));
  CHECK(outs[1].sizes() == at::IntArrayRef({2, 2, 2, 2, 7}));
}

TEST_CASE("loader errors are clear, and leave the registries as they were") {
  CHECK_THROWS_WITH_AS(load_plugin("no/such/plugin.so"), "no/such/plugin.so: plugin not found", InputError);
  CHECK_THROWS_WITH_AS(load_plugin(REVKIT_NOT_A_PLUGIN),
                       doctest::Contains("not a revkit plugin: it has no revkit_plugin_entry() entry point"),
                       InputError);
  CHECK_THROWS_WITH_AS(
      load_plugin(REVKIT_BAD_VERSION_PLUGIN),
      doctest::Contains("plugin API version 999, but this revkit speaks version 3 (rebuild the plugin)"), InputError);
  CHECK_THROWS_WITH_AS(load_plugin(REVKIT_DUPLICATE_PLUGIN),
                       doctest::Contains("plugin 'impostor': backbone 'revcol_tiny' is already registered"),
                       InputError);
  CHECK(backbone_registry().at("revcol_tiny").description.find("RevCol-Tiny") == 0);
}

TEST_CASE("a plugin cut short is refused before the loader maps it (it stopped the process with SIGBUS)") {
  const fs::path dir = fs::temp_directory_path() / ("revkit_cut_plugin_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ifstream whole(REVKIT_REVNET_PLUGIN, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(whole)), std::istreambuf_iterator<char>());
  for (size_t cut : {size_t{4096}, size_t{20000}, bytes.size() / 2}) {
    INFO("cut at ", cut);
    const fs::path path = dir / ("cut" + std::to_string(cut) + ".so");
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    CHECK_THROWS_WITH_AS(load_plugin(path.string()),
                         doctest::Contains("cannot load plugin: the file is cut short (its ELF headers describe"),
                         InputError);
  }
  fs::remove_all(dir);
}
