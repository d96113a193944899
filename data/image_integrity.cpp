#include "data/image_integrity.h"

#include <cstdint>
#include <cstring>
#include <fstream>

namespace revkit {

namespace {

uint32_t big_endian(std::string_view f, size_t pos, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | static_cast<unsigned char>(f[pos + i]);
  return v;
}

unsigned char byte(std::string_view f, size_t pos) { return static_cast<unsigned char>(f[pos]); }

// Whether a JPEG's segments reach its end-of-image marker, wherever that is: phones append data after it (motion
// photos), and an EXIF thumbnail inside has its own, skipped with its segment. Undecidable structures count as
// complete: the decoder has the last word on them.
bool jpeg_reaches_end(std::string_view f) {
  size_t pos = 2;  // after the start-of-image marker
  while (pos + 1 < f.size()) {
    if (byte(f, pos) != 0xFF) return true;
    while (pos + 1 < f.size() && byte(f, pos + 1) == 0xFF) ++pos;  // fill bytes
    if (pos + 1 >= f.size()) return false;
    const unsigned char marker = byte(f, pos + 1);
    pos += 2;
    if (marker == 0xD9) return true;                                     // end of image
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;  // markers without a length
    if (pos + 2 > f.size()) return false;
    pos += big_endian(f, pos, 2);
    if (marker != 0xDA) continue;
    // After a start of scan, entropy-coded data up to the next marker (0xFF 0x00 is a byte, RSTn a restart).
    for (;; ++pos) {
      if (pos + 1 >= f.size()) return false;
      if (byte(f, pos) == 0xFF && byte(f, pos + 1) != 0x00 && !(byte(f, pos + 1) >= 0xD0 && byte(f, pos + 1) <= 0xD7))
        break;
    }
  }
  return false;
}

// Whether a PNG's chunks reach its IEND chunk, whatever follows it.
bool png_reaches_end(std::string_view f) {
  for (size_t pos = 8; pos + 12 <= f.size();) {
    const uint64_t length = big_endian(f, pos, 4);
    if (f.substr(pos + 4, 4) == "IEND") return true;
    pos += 12 + length;
  }
  return false;
}

}  // namespace

std::string truncation_problem(std::string_view file) {
  if (file.size() < 16) return "";
  const bool jpeg = byte(file, 0) == 0xFF && byte(file, 1) == 0xD8 && byte(file, 2) == 0xFF;
  const bool png = file.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8);
  if (jpeg && !jpeg_reaches_end(file)) return "truncated JPEG (no end-of-image marker)";
  if (png && !png_reaches_end(file)) return "truncated PNG (no IEND chunk)";
  return "";
}

std::string truncated_image_problem(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";  // the decoder reports a missing file
  const std::streamoff size = in.tellg();
  unsigned char head[8] = {}, tail[8] = {};
  if (size < 16) return "";
  in.seekg(0);
  in.read(reinterpret_cast<char*>(head), 8);
  in.seekg(size - 8);
  in.read(reinterpret_cast<char*>(tail), 8);
  if (!in) return "";
  const bool jpeg = head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF;
  const bool png = std::memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0;
  // A JPEG ends with its end-of-image marker (FF D9), as Ultralytics checks, a PNG with its IEND chunk and CRC; a
  // file that does not end so is read through, since data may follow those.
  const bool jpeg_ends = tail[6] == 0xFF && tail[7] == 0xD9;
  const bool png_ends = std::memcmp(tail, "IEND\xae\x42\x60\x82", 8) == 0;
  if ((!jpeg || jpeg_ends) && (!png || png_ends)) return "";
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(bytes.data(), size);
  return in ? truncation_problem(bytes) : "";
}

}  // namespace revkit
