#pragma once
// Whether a JPEG or PNG file is whole. OpenCV decodes a file cut short as a picture filled with grey, with a warning
// at most; these say so first.
#include <string>
#include <string_view>

namespace revkit {

// "" for a complete file; else what is wrong with the end of a JPEG (no end-of-image marker) or PNG (no IEND
// chunk) that was cut short. Data after those (a phone's motion photo) is fine. Other formats, and structures
// that cannot be followed, are left to the decoder. A file that ends with its marker is not read through.
std::string truncated_image_problem(const std::string& path);
// The same for a whole file's bytes.
std::string truncation_problem(std::string_view file);

}  // namespace revkit
