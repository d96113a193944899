#!/usr/bin/env bash
# bench_profile.sh REVKIT: `revkit bench --profile PATH` writes LibTorch's Chrome trace of a step to PATH, or, where
# PATH cannot be written, fails with exit 2 and leaves the folder as it was (LibTorch's profiler only logs a failed
# write, and writes in place).
set -uo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bench=("$1" bench --backbone revcol_tiny --columns 2 --imgsz 32 --batch 2 --steps 1)
fail() { echo "$*"; exit 1; }

"${bench[@]}" --profile "$dir/trace.json" >/dev/null || fail "bench --profile failed"
grep -q '"traceEvents"' "$dir/trace.json" || fail "no traceEvents in the trace"
grep -q '"name": "aten::convolution"' "$dir/trace.json" || fail "no convolution in the trace"
[ "$(ls -A "$dir")" = trace.json ] || fail "bench --profile left more than the trace: $(ls -A "$dir")"

mkdir "$dir/folder"
out=$("${bench[@]}" --profile "$dir/folder" 2>&1)
[ $? -eq 2 ] || fail "a folder as the trace: expected exit 2: $out"
grep -q "folder: cannot write: it exists and is not a regular file" <<<"$out" || fail "unexpected message: $out"
[ -d "$dir/folder" ] && [ -z "$(ls -A "$dir/folder")" ] || fail "the folder was changed"

out=$("${bench[@]}" --profile "$dir/missing/trace.json" 2>&1)
[ $? -eq 2 ] || fail "a trace in a missing folder: expected exit 2: $out"
grep -q "missing/trace.json: cannot write: No such file or directory" <<<"$out" || fail "unexpected message: $out"
[ "$(ls -A "$dir")" = "folder
trace.json" ] || fail "a failed --profile left files: $(ls -A "$dir")"
echo "trace written; a folder and a missing folder refused"
