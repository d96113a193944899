#pragma once
// Where a run writes: Ultralytics' increment_path, shared by `train` and `detect`.
#include <string>

namespace revkit {

// <project>/<name> when it does not exist yet (or `exist_ok`), else the first free <project>/<name>2, <name>3, ...
// The folder itself is not created.
std::string next_run_folder(const std::string& project, const std::string& name, bool exist_ok = false);

// Creates `path` and its parents; a folder the user named that cannot be made (no permission, a file in the way)
// is an InputError "<path>: cannot create folder: <why>".
void create_folder(const std::string& path);

}  // namespace revkit
