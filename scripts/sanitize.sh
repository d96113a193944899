#!/usr/bin/env bash
# The test suite under AddressSanitizer and UndefinedBehaviorSanitizer: a separate build in build-asan.
# LibTorch itself is not instrumented; leak checking is off (LibTorch keeps allocations until exit).
#
#   bash scripts/sanitize.sh [CTEST_REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime CCACHE_BASEDIR="$PWD"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREVKIT_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j2
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The asan runtime first in the load order: the plugins and tools are loaded into uninstrumented processes too.
cd build-asan && OMP_NUM_THREADS=1 ctest -j2 --output-on-failure --timeout 3000 ${1:+-R "$1"}
