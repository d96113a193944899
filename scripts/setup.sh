#!/usr/bin/env bash
# Installs what revkit needs from Debian 12, skipping what is already there. Run as root (or with sudo).
set -euo pipefail
packages=(
  cmake g++ make ccache pkg-config
  libtorch-dev libopenblas0-openmp libgloo-dev
  libfmt-dev libspdlog-dev nlohmann-json3-dev doctest-dev libyaml-cpp-dev libcli11-dev
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
# LibTorch multiplies matrices through the system BLAS: make sure it is OpenBLAS, not the reference BLAS.
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/ {print $2}')
case "$blas" in
  *openblas*) ;;
  *) echo "revkit setup: warning: libblas.so.3 points to '${blas:-nothing}', not OpenBLAS; matrix products will be slow" >&2 ;;
esac
