#!/usr/bin/env bash
# A model config whose bad value is nested 100000 deep, or is a megabyte long, is named in one short line (exit 2):
# quoting the whole value overflowed the stack (SIGSEGV), or printed the megabyte.
set -u
revkit=$1 expect=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
{
  printf '{"nc": '
  printf '[%.0s' $(seq 100000)
  printf ']%.0s' $(seq 100000)
  printf '}'
} >"$dir/deep.json"
bash "$expect" 2 '^revkit: error: .*deep.json: nc must be an integer, got \[\[\[\[\.\.\.\]\]\]\]$' "$revkit" info --model "$dir/deep.json" || exit 1
printf '{"nc": "%s"}' "$(head -c 1000000 /dev/zero | tr '\0' A)" >"$dir/long.json"
out=$("$revkit" info --model "$dir/long.json" 2>&1)
[ $? -eq 2 ] || { echo "expected exit code 2"; exit 1; }
[ ${#out} -lt 300 ] || { echo "the error line is ${#out} characters long"; exit 1; }
grep -Eq 'long.json: nc must be an integer, got "A+"\.\.\.$' <<<"$out" || { echo "unexpected: $out"; exit 1; }
echo "deep and long values are quoted short"
