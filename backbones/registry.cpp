// The built-in backbones, registered in one place on first use of the registry.
#include "backbones/backbone.h"
#include "backbones/revcol.h"

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

void register_builtin_backbones(Registry<BackboneFactory>& registry) {
  for (const auto& variant : revcol_variant_names()) {
    const auto o = revcol_variant(variant);
    registry.add("revcol_" + variant,
                 "RevCol-" + std::string(1, static_cast<char>(std::toupper(variant[0]))) + variant.substr(1) +
                     " reversible column backbone (" + std::to_string(o.columns()) + " columns), strides 4-32",
                 [variant](const BackboneArgs& args) -> std::shared_ptr<Backbone> {
                   return std::make_shared<RevColImpl>(apply(revcol_variant(variant), args));
                 });
  }
}

}  // namespace

Registry<BackboneFactory>& backbone_registry() {
  static Registry<BackboneFactory>* registry = [] {
    auto* r = new Registry<BackboneFactory>("backbone");
    register_builtin_backbones(*r);
    return r;
  }();
  return *registry;
}

}  // namespace revkit
