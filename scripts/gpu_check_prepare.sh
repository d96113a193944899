#!/usr/bin/env bash
# Prepares, on a machine with Debian's packages and PyPI (after scripts/setup.sh), what scripts/gpu_check.sh needs
# on a GPU machine whose image has CUDA, CMake, ninja and PyTorch but no Debian -dev libraries and no internet:
#   .gpu-check/prefix     the libraries revkit builds against besides LibTorch: the headers and CMake files of
#                         nlohmann-json, CLI11, doctest and Gloo, yaml-cpp with its shared library (all copied from
#                         Debian's packages), and OpenCV's core, imgproc and imgcodecs built from source (the PyPI
#                         source release of opencv-python-headless) with their image codecs inside, so that
#                         nothing else needs to be installed there;
#   .gpu-check/reference  the seed's Python RevCol (REVKIT_REFERENCE, default ../shared/reference) for the
#                         side-by-side measurements.
# The folder is ignored by git; hand it to the GPU machine with the working tree (about 25 MB).
#
#   bash scripts/gpu_check_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.gpu-check
prefix="$dest/prefix"
opencv_version=4.10.0.84
opencv_sha256=f2017c6101d7c2ef8d7bc3b414c37ff7f54d64413a1847d89970b6b7069b4e1a
deps="${REVKIT_DEPS:-$HOME/.local/share/revkit}"
reference="${REVKIT_REFERENCE:-../shared/reference}"
[ -f "$reference/seedref.py" ] || { echo "gpu_check_prepare.sh: $reference/seedref.py: not found" >&2; exit 2; }
mkdir -p "$prefix"

# Debian's header-only packages and yaml-cpp, under the prefix as they lie under /usr.
for package in nlohmann-json3-dev libcli11-dev doctest-dev libgloo-dev libyaml-cpp-dev libyaml-cpp0.7; do
  dpkg-query -W "$package" >/dev/null 2>&1 || { echo "gpu_check_prepare.sh: $package is not installed (run scripts/setup.sh)" >&2; exit 2; }
  dpkg -L "$package" | grep -E '^/usr/(include|share/cmake|lib/cmake|lib/x86_64-linux-gnu)/' | while read -r f; do
    [ -f "$f" ] || continue
    mkdir -p "$prefix/$(dirname "${f#/usr/}")"
    cp -P "$f" "$prefix/${f#/usr/}"
  done
done
rm -f "$prefix"/lib/x86_64-linux-gnu/libyaml-cpp.a  # the shared library is what revkit links
# doctest's CMake file names /usr itself; make it relative to where it lies.
sed -i 's|^set(_IMPORT_PREFIX "/usr")|get_filename_component(_IMPORT_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)|' \
  "$prefix/lib/cmake/doctest/doctestTargets.cmake"

# OpenCV: only the three modules revkit uses, with the codecs of the image formats revkit reads built in.
if [ ! -f "$prefix/lib/libopencv_imgcodecs.so" ]; then
  work="$deps/opencv-$opencv_version"
  archive="$deps/opencv-python-headless-$opencv_version.tar.gz"
  if [ ! -f "$archive" ]; then
    url=$(curl -fsS https://pypi.org/simple/opencv-python-headless/ |
      grep -o "https://[^\"#]*opencv[_-]python[_-]headless-$opencv_version.tar.gz" | head -1)
    curl -fsSL "$url" -o "$archive.partial" && mv "$archive.partial" "$archive"
  fi
  echo "$opencv_sha256  $archive" | sha256sum -c --quiet
  if [ ! -d "$work/src" ]; then
    rm -rf "$work" && mkdir -p "$work/src"
    tar xzf "$archive" -C "$work/src" --strip-components=2 "opencv-python-headless-$opencv_version/opencv"
  fi
  cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PWD/$prefix" \
    -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_LIST=core,imgproc,imgcodecs -DBUILD_SHARED_LIBS=ON \
    -DBUILD_ZLIB=ON -DBUILD_JPEG=ON -DBUILD_PNG=ON -DBUILD_TIFF=ON -DBUILD_WEBP=ON \
    -DWITH_OPENJPEG=OFF -DWITH_JASPER=OFF -DWITH_OPENEXR=OFF -DWITH_GDAL=OFF -DWITH_GDCM=OFF -DWITH_IMGCODEC_HDR=OFF \
    -DWITH_IPP=OFF -DWITH_ITT=OFF -DWITH_OPENCL=OFF -DWITH_LAPACK=OFF -DWITH_EIGEN=OFF -DWITH_TBB=OFF \
    -DWITH_PROTOBUF=OFF -DWITH_FFMPEG=OFF -DWITH_GTK=OFF -DWITH_CUDA=OFF -DWITH_AVIF=OFF -DWITH_OPENVX=OFF \
    -DBUILD_TESTS=OFF -DBUILD_PERF_TESTS=OFF -DBUILD_EXAMPLES=OFF -DBUILD_opencv_apps=OFF -DBUILD_JAVA=OFF \
    -DBUILD_opencv_python3=OFF -DOPENCV_GENERATE_PKGCONFIG=OFF -DCPU_DISPATCH=AVX2 >/dev/null
  cmake --build "$work/build" -j"$(nproc)"
  cmake --install "$work/build" >/dev/null
  rm -rf "$prefix/share/licenses" "$prefix/share/opencv4" "$prefix/bin"  # cascade data revkit does not read
fi

rm -rf "$dest/reference" && mkdir -p "$dest/reference"
cp "$reference"/*.py "$dest/reference/"
echo "gpu_check_prepare.sh: $dest is ready ($(du -sh "$dest" | cut -f1)); on the GPU machine run scripts/gpu_check.sh"
