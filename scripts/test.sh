#!/usr/bin/env bash
# README command two: install what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd build
OMP_NUM_THREADS=1 ctest -j2 --output-on-failure --timeout 900
