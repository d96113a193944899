#include "core/config.h"

#include <doctest/doctest.h>

#include "core/error.h"

using namespace revkit;

TEST_CASE("YAML becomes JSON: numbers, booleans, null, quoted strings stay strings") {
  const auto j =
      parse_config_text("a: 3\nb: 0.25\nc: [None, 2, 'nearest']\nd: True\ne: ~\nf: '12'\ng: nc\n", "t.yaml", true);
  CHECK(j["a"] == 3);
  CHECK(j["a"].is_number_integer());
  CHECK(j["b"].get<double>() == doctest::Approx(0.25));
  CHECK(j["c"][0] == "None");
  CHECK(j["c"][1] == 2);
  CHECK(j["c"][2] == "nearest");
  CHECK(j["d"] == true);
  CHECK(j["e"].is_null());
  CHECK(j["f"] == "12");
  CHECK(j["g"] == "nc");
}

TEST_CASE("syntax errors name the file, line and column") {
  CHECK_THROWS_WITH_AS(parse_config_text("a: [1, 2\nb: 3\n", "m.yaml", true),
                       doctest::Contains("m.yaml: YAML syntax error at line"), InputError);
  CHECK_THROWS_WITH_AS(parse_config_text("{\n  \"a\": 1,\n  \"b\": ]\n}", "m.json", false),
                       doctest::Contains("m.json: JSON syntax error at line 3, column 8"), InputError);
  CHECK_THROWS_WITH(load_config_file("nowhere.yaml"), "nowhere.yaml: cannot open file");
  // Found by the config fuzzer: a number too large for a double escaped as a JSON exception and aborted.
  CHECK_THROWS_WITH_AS(parse_config_text("[1247594e1756269202999]", "m.json", false),
                       doctest::Contains("m.json: JSON error: number overflow"), InputError);
}
