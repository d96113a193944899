#include "backbones/revcol_fixture.h"

#include <doctest/doctest.h>

#include "core/error.h"

using namespace revkit;
using reversible::MemoryMode;

TEST_CASE("both reference fixtures, every memory mode, within tolerance") {
  for (const char* file : {"revcol_mini_f64.safetensors", "revcol_small_f32.safetensors"}) {
    const auto fixture = load_revcol_fixture(std::string(REVKIT_TEST_FIXTURES) + "/" + file);
    for (MemoryMode mode : {MemoryMode::Off, MemoryMode::Column, MemoryMode::Full}) {
      const auto report = check_revcol_fixture(fixture, mode);
      const double tol = reversible::default_tolerance(mode, fixture.dtype);
      INFO(file, " ", reversible::to_string(mode), ": worst ", report.worst_overall(), " at ",
           report.worst("parameter gradients").name);
      CHECK(report.worst_overall() <= tol);
      CHECK(report.categories().size() == 3);
      CHECK(report.differences.size() == 4 + 1 + fixture.grads.size());
    }
  }
}

TEST_CASE("a file that is not a RevCol fixture names what is missing") {
  CHECK_THROWS_WITH_AS(load_revcol_fixture("missing.safetensors"), "missing.safetensors: cannot open file", InputError);
}

TEST_CASE("a fixture whose reference gradient is off is reported beyond tolerance, by name") {
  auto fixture = load_revcol_fixture(std::string(REVKIT_TEST_FIXTURES) + "/revcol_mini_f64.safetensors");
  fixture.grads["subnet2.level3.blocks.0.pwconv1.weight"] =
      fixture.grads["subnet2.level3.blocks.0.pwconv1.weight"] * 1.001;
  const auto report = check_revcol_fixture(fixture, MemoryMode::Column);
  CHECK_FALSE(report.within(1e-10));
  CHECK(report.worst("parameter gradients").name == "grad/subnet2.level3.blocks.0.pwconv1.weight");
  CHECK(report.worst("parameter gradients").relative == doctest::Approx(1e-3 / 1.001).epsilon(1e-3));
  CHECK(report.worst("outputs").relative < 1e-10);
}
