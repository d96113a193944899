#include "core/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace revkit {
namespace {

namespace fs = std::filesystem;

// Where the bytes for `path` go: through a symbolic link to its target (the rename would replace the link
// itself), and never over a device, a pipe or a folder (a rename would replace those as well).
std::string write_target(const std::string& path) {
  // A path that does not exist yet reads as an error here: fopen names what is wrong with it.
  std::error_code error;
  fs::path target = path;
  // Followed link by link: a link to a file not written yet resolves too (weakly_canonical would stop at it).
  for (int links = 0; fs::is_symlink(fs::symlink_status(target, error)); ++links) {
    if (links == 40) throw InputError(path, "cannot write: too many levels of symbolic links");
    const fs::path next = fs::read_symlink(target, error);
    if (error) throw InputError(path, "cannot write: " + error.message());
    target = next.is_absolute() ? next : target.parent_path() / next;
  }
  const fs::file_status status = fs::status(target, error);
  if (fs::exists(status) && !fs::is_regular_file(status))
    throw InputError(path, "cannot write: it exists and is not a regular file");
  return target.string();
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  temp_path_ = write_target(path_) + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) throw InputError(path_, std::string("cannot write: ") + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::remove(temp_path_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (!file_) throw InputError(path_, "write after commit");
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    throw InputError(path_, std::string("write failed: ") + std::strerror(errno));
}

void AtomicFile::commit() {
  if (!file_) return;
  const bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  const int err = errno;
  std::fclose(file_);
  file_ = nullptr;
  // The temporary file sits beside the target: its name without the suffix.
  const std::string target = temp_path_.substr(0, temp_path_.rfind(".tmp."));
  if (!ok || std::rename(temp_path_.c_str(), target.c_str()) != 0) {
    std::remove(temp_path_.c_str());
    throw InputError(path_, std::string("cannot write: ") + std::strerror(ok ? errno : err));
  }
}

void write_file_atomically(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

}  // namespace revkit
