#!/usr/bin/env bash
# The GPU check, one run on a machine with one NVIDIA GPU whose image has CUDA (nvcc), CMake, ninja and a Python
# with PyTorch (and its LibTorch) but no Debian -dev libraries and no internet:
#   1. builds revkit there against that PyTorch's LibTorch, with the other libraries from .gpu-check/prefix
#      (made beforehand by scripts/gpu_check_prepare.sh on a machine with Debian's packages);
#   2. runs the GPU tests (CTest's gpu/ entries: every memory mode against plain autograd on CUDA with dropout and
#      drop path, fp16 and bf16 autocast, BatchNorm updated once, activation memory per mode, one-rank NCCL,
#      pinned-memory batches);
#   3. measures revkit against the seed's Python on the GPU (bench/gpu_bench.py): RevCol-T per memory mode at
#      batch 2 and 224, the largest batch within a memory budget in off and full, and the seed's detector at 640,
#      batch 16.
# Everything it prints also goes to one results file: $OUT/gpu_check.md when OUT is set, else build-gpu/gpu_check.md.
# It keeps to 8 minutes: the measurements get what the build and tests leave of that.
#
#   bash scripts/gpu_check.sh            (PYTHON=... picks the Python whose torch to build against)
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
python="${PYTHON:-python3}"
prefix="$PWD/.gpu-check/prefix"
results_dir="${OUT:-build-gpu}"
mkdir -p "$results_dir" build-gpu
results="$results_dir/gpu_check.md"
log="$results_dir/gpu_check.log"
: > "$log"
say() { echo "$*" | tee -a "$log"; }
elapsed() { echo $(( $(date +%s) - start )); }
[ -d "$prefix/lib" ] && [ -d .gpu-check/reference ] ||
  { echo "gpu_check.sh: .gpu-check is missing: run scripts/gpu_check_prepare.sh first (on a machine with Debian's packages)" >&2; exit 2; }

say "== GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$log"
torch_cmake=$("$python" -c "import torch; print(torch.utils.cmake_prefix_path)") ||
  { echo "gpu_check.sh: $python has no torch" >&2; exit 2; }

say "== build against $torch_cmake ($(elapsed) s)"
export CPATH="$prefix/include${CPATH:+:$CPATH}"  # Gloo's headers, which LibTorch's c10d headers include
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_cmake;$prefix" >>"$log" 2>&1 &&
  cmake --build build-gpu -j"$(nproc)" --target revkit revkit_tests >>"$log" 2>&1
build_rc=$?
say "build exit code $build_rc after $(elapsed) s"
if [ "$build_rc" -ne 0 ]; then tail -30 "$log"; cp "$log" "$results"; exit 1; fi
export LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
build-gpu/bin/revkit --version | tee -a "$log"

say "== GPU tests ($(elapsed) s)"
(cd build-gpu && ctest -R '^gpu/' --output-on-failure --timeout 240) 2>&1 | tee -a "$log" | grep -E "Test +#|tests passed|Skipped|Failed|error" 
tests_rc=${PIPESTATUS[0]}
say "GPU tests exit code $tests_rc after $(elapsed) s"

say "== measurements ($(elapsed) s)"
left=$(( 480 - 20 - $(elapsed) ))
[ "$left" -lt 30 ] && left=30
steps=5
[ "$left" -lt 150 ] && steps=3
timeout "$left" "$python" bench/gpu_bench.py --revkit build-gpu/bin/revkit --reference .gpu-check/reference \
  --steps "$steps" --out build-gpu/gpu_bench.md 2>&1 | grep -v Warning | tee -a "$log"
bench_rc=${PIPESTATUS[0]}
say "measurements exit code $bench_rc after $(elapsed) s"

{
  echo "# scripts/gpu_check.sh"
  echo
  echo "Build $build_rc, GPU tests $tests_rc, measurements $bench_rc (exit codes), $(elapsed) s in all."
  echo
  [ -f build-gpu/gpu_bench.md ] && cat build-gpu/gpu_bench.md
  echo
  echo '## Log'
  echo
  echo '```'
  grep -v "^\[[0-9]*/[0-9]*\]" "$log"
  echo '```'
} > "$results"
echo "wrote $results"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
