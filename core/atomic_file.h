#pragma once
// A file written all-or-nothing: bytes go to a file without a name in the target's folder (O_TMPFILE), which
// commit() flushes to disk, names "<path>.tmp.<pid>" and renames over `path`. A process killed (even by SIGKILL)
// while it writes leaves the previous file untouched and nothing else; only a kill between the naming and the
// rename leaves the ".tmp.<pid>" file. Where there are no unnamed files (the file system, or no /proc), the bytes
// go to "<path>.tmp.<pid>" from the start, removed if the AtomicFile is destroyed without commit().
#include <cstddef>
#include <cstdio>
#include <string>

namespace revkit {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t bytes);
  void write(const std::string& text) { write(text.data(), text.size()); }
  void commit();

 private:
  std::string path_;
  std::string target_;     // path_, or the file a symbolic link at path_ leads to
  std::string temp_path_;  // the name the bytes have before the rename
  bool unnamed_ = false;   // the bytes are in an O_TMPFILE file, named only by commit()
  std::FILE* file_ = nullptr;
};

// Writes a whole text file atomically.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace revkit
