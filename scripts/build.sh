#!/usr/bin/env bash
# Configures and builds revkit into build/ against the LibTorch that scripts/setup.sh installed (or the one that
# CMAKE_PREFIX_PATH names); ccache and precompiled headers keep rebuilds short.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_BASEDIR="$PWD"  # paths relative to the tree, so clones share cache entries
generator=()
if [ ! -f build/CMakeCache.txt ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j2
