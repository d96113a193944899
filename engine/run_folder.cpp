#include "engine/run_folder.h"

#include <filesystem>

#include "core/error.h"

namespace revkit {

std::string next_run_folder(const std::string& project, const std::string& name, bool exist_ok) {
  namespace fs = std::filesystem;
  const fs::path p = fs::path(project) / name;
  if (exist_ok || !fs::exists(p)) return p.string();
  for (int n = 2;; ++n) {
    const fs::path candidate = fs::path(project) / (name + std::to_string(n));
    if (!fs::exists(candidate)) return candidate.string();
  }
}

void create_folder(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) throw InputError(path, "cannot create folder: " + error.message());
}

}  // namespace revkit
