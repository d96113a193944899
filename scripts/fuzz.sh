#!/usr/bin/env bash
# Runs each libFuzzer target (model configs, YOLO labels, safetensors, PyTorch checkpoints, JPEG and PNG ends) for a
# fixed time, starting from and adding to its corpus in fuzz/corpus/<target>. A crash leaves its input in build-fuzz/crashes/ and fails the script.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]    (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v clang++ >/dev/null || { echo "scripts/fuzz.sh: needs clang (apt-get install clang)" >&2; exit 2; }
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime CCACHE_BASEDIR="$PWD"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DREVKIT_FUZZ=ON \
  -DREVKIT_USE_PCH=OFF >/dev/null
cmake --build build-fuzz -j2
mkdir -p build-fuzz/crashes
status=0
for target in config labels safetensors pytorch_checkpoint image_integrity; do
  echo "== $target: ${seconds} s"
  scratch="build-fuzz/corpus/$target"
  mkdir -p "$scratch"
  # New inputs go to a scratch corpus; the tree's corpus is only read.
  if ! ASAN_OPTIONS=detect_leaks=0 "build-fuzz/fuzz/${target}_fuzzer" "$scratch" "fuzz/corpus/$target" \
      -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=4096 -artifact_prefix="build-fuzz/crashes/$target-" \
      -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)"; then
    true
  fi
  if ls build-fuzz/crashes/"$target"-* >/dev/null 2>&1; then status=1; echo "$target: crash inputs in build-fuzz/crashes"; fi
done
exit $status
