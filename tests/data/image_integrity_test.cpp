#include "data/image_integrity.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

using namespace revkit;

namespace {
// A 1x1 RGBA PNG, hand-encoded.
const std::string kOnePixelPng(
    "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89"
    "\0\0\0\x0aIDATx\x9c\x63\0\x01\0\0\x05\0\x01\x0d\x0a\x2d\xb4\0\0\0\0IEND\xae\x42\x60\x82",
    67);

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}
}  // namespace

TEST_CASE("a JPEG or PNG cut short is named; data after a complete one (a phone's motion photo) is not") {
  const auto dir = std::filesystem::temp_directory_path() / ("revkit_integrity_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& bytes, const std::string& name) {
    const std::string path = (dir / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  };
  const std::string jpg = read_all(REVKIT_ASSETS "/coco8/images/train/000000000009.jpg");
  const std::string cut = "truncated JPEG (no end-of-image marker)";
  CHECK(truncated_image_problem(write(jpg, "whole.jpg")).empty());
  CHECK(truncated_image_problem(write(jpg.substr(0, 3000), "cut.jpg")) == cut);
  CHECK(truncated_image_problem(write(jpg.substr(0, jpg.size() - 2), "no_marker.jpg")) == cut);
  // A second picture's bytes after the end-of-image marker, or zero padding: complete.
  CHECK(truncated_image_problem(write(jpg + std::string(4000, '\x55') + "\xff\xd8\xff\xe0", "motion.jpg")).empty());
  CHECK(truncated_image_problem(write(jpg + std::string(512, '\0'), "padded.jpg")).empty());
  // Cut inside the scan and then padded: still truncated, though it no longer ends mid-scan.
  CHECK(truncated_image_problem(write(jpg.substr(0, 3000) + std::string(512, '\0'), "cut_padded.jpg")) == cut);
  // The same for a PNG with bytes after its IEND chunk, and one whose chunks stop short.
  CHECK(truncated_image_problem(write(kOnePixelPng, "whole.png")).empty());
  CHECK(truncated_image_problem(write(kOnePixelPng + "trailing bytes", "tail.png")).empty());
  CHECK(truncated_image_problem(write(kOnePixelPng.substr(0, 55), "cut.png")) == "truncated PNG (no IEND chunk)");
  CHECK(truncated_image_problem(write(kOnePixelPng.substr(0, 50) + "trailing bytes", "cut_tail.png")) ==
        "truncated PNG (no IEND chunk)");
  CHECK(truncated_image_problem((dir / "missing.jpg").string()).empty());  // the decoder names a missing file
  std::filesystem::remove_all(dir);
}

TEST_CASE("the JPEG walk follows segments, scans, restarts and stuffed bytes, not a search for FF D9") {
  // SOI; an APP1 segment holding an EXIF thumbnail with its own SOI ... EOI; a start of scan; entropy-coded data
  // with a stuffed 0xFF 0x00, a restart marker and fill bytes before the next marker.
  const std::string head("\xff\xd8" "\xff\xe1\x00\x0a" "\xff\xd8\x01\x02\xff\xd9\x03\x04", 14);
  const std::string scan("\xff\xda\x00\x04\x01\x02" "\x10\xff\x00\x20\xff\xd0\x30\x40", 14);
  const std::string second_scan("\xff\xff\xff\xda\x00\x04\x05\x06" "\x50\x60\x70", 11);  // progressive
  const std::string end("\xff\xd9", 2);
  const std::string cut = "truncated JPEG (no end-of-image marker)";
  CHECK(truncation_problem(head + scan + second_scan + end).empty());
  CHECK(truncation_problem(head + scan + second_scan + end + "appended").empty());
  // The thumbnail's FF D9 is inside its segment: the main picture, cut in its scan, is truncated.
  CHECK(truncation_problem(head + scan + second_scan) == cut);
  CHECK(truncation_problem(head + scan) == cut);
  CHECK(truncation_problem(head + scan.substr(0, 3)) == cut);  // inside a length field
  // Not a JPEG or PNG, or too short to tell: left to the decoder.
  CHECK(truncation_problem("GIF89a and more than sixteen bytes").empty());
  CHECK(truncation_problem(std::string("\xff\xd8\xff", 3)).empty());
}
