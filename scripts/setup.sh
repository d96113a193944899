#!/usr/bin/env bash
# Installs what revkit needs, skipping what is already there:
# - from Debian 12 (apt; run as root or with sudo): the compiler, CMake, and the small libraries revkit uses;
# - from PyPI: PyTorch's wheel, whose LibTorch (with CUDA) revkit builds against, pinned to one version and
#   installed once into $REVKIT_DEPS (default ~/.local/share/revkit), outside any clone, where every later clone
#   and build finds it. A plain `cmake -S . -B build` looks there too.
set -euo pipefail
torch_version=2.11.0
deps="${REVKIT_DEPS:-$HOME/.local/share/revkit}"
torch_home="$deps/torch-$torch_version"

packages=(
  cmake g++ ninja-build ccache pkg-config python3-pip
  libgloo-dev nlohmann-json3-dev doctest-dev libyaml-cpp-dev libcli11-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "revkit setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The wheel goes into a temporary folder renamed into place when complete, so an interrupted download never
# leaves a half-installed LibTorch behind.
if [ ! -f "$torch_home/torch/share/cmake/Torch/TorchConfig.cmake" ]; then
  echo "revkit setup: installing PyTorch $torch_version (LibTorch with CUDA, about 3 GB to download) into $torch_home"
  mkdir -p "$deps"
  partial="$torch_home.partial.$$"
  trap 'rm -rf "$partial"' EXIT
  start=$(date +%s)
  /usr/bin/python3 -m pip install --quiet --no-compile --no-warn-script-location --target "$partial" \
    "torch==$torch_version"
  rm -rf "$torch_home"
  mv "$partial" "$torch_home"
  trap - EXIT
  echo "revkit setup: PyTorch $torch_version installed in $(( $(date +%s) - start )) s ($(du -sh "$torch_home" | cut -f1))"
fi
