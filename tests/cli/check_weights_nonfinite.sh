#!/usr/bin/env bash
# check --weights A --reference B fails when either file holds a NaN or an infinity, whichever side it is on and
# wherever it sorts among the tensors, and passes on two equal finite files.
set -u
revkit=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# A safetensors file of two float32 tensors, "a" = [1, 2] and "b" = [3, VALUE], VALUE as four little-endian bytes.
write() {
  local header='{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}'
  {
    printf "\\x$(printf %02x ${#header})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
    printf '%s' "$header"
    printf '\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40'  # 1, 2, 3
    printf "$2"
  } >"$dir/$1"
}
write finite.safetensors '\x00\x00\x80\x40'  # 4
write nan.safetensors '\x00\x00\xc0\x7f'
write inf.safetensors '\x00\x00\x80\x7f'

expect() {
  local code=$1 pattern=$2
  shift 2
  out=$("$revkit" check "$@" 2>&1)
  got=$?
  printf '%s\n' "$out"
  [ "$got" -eq "$code" ] || { echo "expected exit code $code, got $got: $*"; exit 1; }
  grep -Eq -- "$pattern" <<<"$out" || { echo "output does not match: $pattern"; exit 1; }
}
expect 0 "worst relative difference 0.000e\+00" --weights "$dir/finite.safetensors" --reference "$dir/finite.safetensors"
for bad in nan inf; do
  expect 1 "inf  b" --weights "$dir/$bad.safetensors" --reference "$dir/finite.safetensors"
  expect 1 "check FAILED" --weights "$dir/finite.safetensors" --reference "$dir/$bad.safetensors"
  expect 1 "check FAILED" --weights "$dir/$bad.safetensors" --reference "$dir/$bad.safetensors"
done
echo "non-finite weights fail the check"
