#!/usr/bin/env bash
# Configures and builds revkit into build/ (ccache and precompiled headers keep rebuilds short).
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_BASEDIR="$PWD"  # paths relative to the tree, so clones share cache entries
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j2
