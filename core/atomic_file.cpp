#include "core/atomic_file.h"

#include <fcntl.h>
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
  target_ = write_target(path_);
  temp_path_ = target_ + ".tmp." + std::to_string(::getpid());
  const fs::path folder = fs::path(target_).parent_path();
  // commit() names the file through /proc, which a chroot or a sandbox may lack.
  const int fd = ::access("/proc/self/fd", X_OK) == 0
                     ? ::open(folder.empty() ? "." : folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666)
                     : -1;
  if (fd >= 0) {
    file_ = ::fdopen(fd, "wb");
    if (!file_) ::close(fd);
    unnamed_ = file_ != nullptr;
  }
  // No unnamed files here (or no such folder: fopen names the problem as the user sees it).
  if (!file_) file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) throw InputError(path_, std::string("cannot write: ") + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    if (!unnamed_) std::remove(temp_path_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t bytes) {
  if (!file_) throw InputError(path_, "write after commit");
  if (bytes && std::fwrite(data, 1, bytes, file_) != bytes)
    throw InputError(path_, std::string("write failed: ") + std::strerror(errno));
}

void AtomicFile::commit() {
  if (!file_) return;
  bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  // An unnamed file gets its temporary name only now, complete: linkat cannot replace the target itself.
  if (ok && unnamed_) {
    const std::string self = "/proc/self/fd/" + std::to_string(::fileno(file_));
    std::remove(temp_path_.c_str());  // left by a process with this pid before, killed between link and rename
    ok = ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, temp_path_.c_str(), AT_SYMLINK_FOLLOW) == 0;
  }
  const int err = errno;
  std::fclose(file_);
  file_ = nullptr;
  if (!ok || std::rename(temp_path_.c_str(), target_.c_str()) != 0) {
    const int rename_err = errno;
    std::remove(temp_path_.c_str());
    throw InputError(path_, std::string("cannot write: ") + std::strerror(ok ? rename_err : err));
  }
}

void write_file_atomically(const std::string& path, const std::string& text) {
  AtomicFile f(path);
  f.write(text);
  f.commit();
}

}  // namespace revkit
