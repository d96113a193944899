#pragma once
// A file written all-or-nothing: bytes go to "<path>.tmp.<pid>", which commit() flushes to disk and renames
// over `path`. Destroyed without commit(), it removes the temporary file, so a failure leaves nothing
// half-written and the previous file untouched.
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
  std::string temp_path_;
  std::FILE* file_ = nullptr;
};

// Writes a whole text file atomically.
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace revkit
