#include "engine/run_folder.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace fs = std::filesystem;
using namespace revkit;

TEST_CASE("run folders are numbered as Ultralytics numbers them: exp, exp2, exp3") {
  const fs::path project = fs::temp_directory_path() / ("revkit_runs_" + std::to_string(::getpid()));
  CHECK(next_run_folder(project.string(), "exp") == (project / "exp").string());
  fs::create_directories(project / "exp");
  CHECK(next_run_folder(project.string(), "exp") == (project / "exp2").string());
  CHECK(next_run_folder(project.string(), "exp", /*exist_ok=*/true) == (project / "exp").string());
  fs::create_directories(project / "exp2");
  CHECK(next_run_folder(project.string(), "exp") == (project / "exp3").string());
  fs::remove_all(project);
}

TEST_CASE("a folder that cannot be made is the user's path named, not an internal error") {
  const fs::path base = fs::temp_directory_path() / ("revkit_folder_" + std::to_string(::getpid()));
  create_folder((base / "a" / "b").string());
  CHECK(fs::is_directory(base / "a" / "b"));
  std::ofstream((base / "file").string()) << "x";
  const std::string blocked = (base / "file" / "runs").string();
  CHECK_THROWS_WITH_AS(create_folder(blocked), doctest::Contains((blocked + ": cannot create folder: ").c_str()),
                       InputError);
  fs::remove_all(base);
}
