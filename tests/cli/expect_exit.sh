#!/usr/bin/env bash
# expect_exit.sh CODE PATTERN CMD...: runs CMD; passes when it exits with CODE and its output matches PATTERN.
code=$1 pattern=$2
shift 2
out=$("$@" 2>&1)
got=$?
printf '%s\n' "$out"
if [ "$got" -ne "$code" ]; then echo "expected exit code $code, got $got"; exit 1; fi
if ! grep -Eq -- "$pattern" <<<"$out"; then echo "output does not match: $pattern"; exit 1; fi
