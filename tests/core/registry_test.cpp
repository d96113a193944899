#include "core/registry.h"

#include <doctest/doctest.h>

using revkit::Registry;

TEST_CASE("registry: add, look up, list sorted, reject duplicates and unknown names") {
  Registry<std::function<int()>> r("widget");
  r.add("b", "the b widget", [] { return 2; });
  r.add("a", "the a widget", [] { return 1; });
  CHECK(r.contains("a"));
  CHECK(r.factory("b")() == 2);
  CHECK(r.at("a").description == "the a widget");
  CHECK(r.names() == std::vector<std::string>{"a", "b"});
  CHECK(r.entries().front().name == "a");
  CHECK_THROWS_WITH_AS(r.add("a", "again", [] { return 3; }), "widget 'a' is already registered", revkit::InputError);
  CHECK_THROWS_WITH_AS(r.at("c"), "unknown widget 'c' (known: a, b)", revkit::UnknownNameError);
  CHECK_THROWS_AS(r.add("", "nameless", [] { return 0; }), revkit::InputError);
}
