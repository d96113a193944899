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
