#!/usr/bin/env bash
# README command two: install what is missing, build, run every test, then build and run the downstream
# example against the installed tree.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd build && OMP_NUM_THREADS=1 ctest -j2 --output-on-failure --timeout 900)

echo "== examples/custom_backbone against the installed tree"
rm -rf build/install build/example
cmake --install build --prefix build/install >/dev/null
export CCACHE_BASEDIR="$PWD"
cmake -S examples/custom_backbone -B build/example -DCMAKE_PREFIX_PATH="$PWD/build/install" \
  -DCMAKE_CXX_COMPILER_LAUNCHER="$(command -v ccache || true)" >/dev/null
cmake --build build/example -j2
OMP_NUM_THREADS=1 build/example/custom_backbone
