#include "core/excerpt.h"

#include <doctest/doctest.h>

#include <cstdint>

using namespace revkit;

TEST_CASE("json_excerpt: short values whole, long strings cut, nesting shown three levels deep") {
  CHECK(json_excerpt(nlohmann::json(3)) == "3");
  CHECK(json_excerpt(nlohmann::json("C3")) == "\"C3\"");
  CHECK(json_excerpt(nlohmann::json::parse(R"([1, [2, "a"], {"k": null}])")) == R"([1, [2, "a"], {"k": null}])");
  CHECK(json_excerpt(nlohmann::json(std::string(1000, 'A')), 20) == "\"" + std::string(20, 'A') + "\"...");
  CHECK(json_excerpt(nlohmann::json::parse("[[[[[1]]]]]")) == "[[[[...]]]]");
  CHECK(json_excerpt(nlohmann::json::array()) == "[]");
  // A list is shown until the text is long enough.
  CHECK(json_excerpt(nlohmann::json(std::vector<int>(1000, 7)), 10) == "[7, 7, 7, ...]");
}

TEST_CASE("json_excerpt survives nesting far deeper than a recursive printer does") {
  const int depth = 200000;
  const nlohmann::json deep = nlohmann::json::parse(std::string(depth, '[') + std::string(depth, ']'));
  CHECK(json_excerpt(deep) == "[[[[...]]]]");
}

TEST_CASE("printable: bytes outside printable ASCII as \\xNN, long text cut") {
  CHECK(printable("1]}} t\xa1\n") == "1]}} t\\xa1\\x0a");
  CHECK(printable("plain text") == "plain text");
  CHECK(printable(std::string(500, 'x'), 10) == "xxxxxxxxxx...");
}

TEST_CASE("fits_int64: integers int64_t holds, not JSON's unsigned ones above it, nor other values") {
  CHECK(fits_int64(nlohmann::json(-3)));
  CHECK(fits_int64(nlohmann::json(uint64_t{INT64_MAX})));
  CHECK_FALSE(fits_int64(nlohmann::json(uint64_t{INT64_MAX} + 1)));
  CHECK_FALSE(fits_int64(nlohmann::json::parse("18446744073709551615")));
  CHECK_FALSE(fits_int64(nlohmann::json(2.0)));
  CHECK_FALSE(fits_int64(nlohmann::json("2")));
}
