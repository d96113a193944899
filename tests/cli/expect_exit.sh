#!/usr/bin/env bash
# expect_exit.sh CODE PATTERN CMD...: runs CMD; passes when it exits with CODE and its output matches PATTERN (and,
# with NOTHING_AT set, when CMD left nothing at that path; with MATCHES=N, when exactly N lines match).
code=$1 pattern=$2
shift 2
if [ -n "${NOTHING_AT:-}" ]; then rm -rf "$NOTHING_AT"; fi
out=$("$@" 2>&1)
got=$?
printf '%s\n' "$out"
if [ "$got" -ne "$code" ]; then echo "expected exit code $code, got $got"; exit 1; fi
if ! grep -Eq -- "$pattern" <<<"$out"; then echo "output does not match: $pattern"; exit 1; fi
if [ -n "${MATCHES:-}" ] && [ "$(grep -Ec -- "$pattern" <<<"$out")" -ne "$MATCHES" ]; then
  echo "expected $MATCHES lines to match: $pattern"; exit 1
fi
if [ -n "${NOTHING_AT:-}" ] && [ -e "$NOTHING_AT" ]; then echo "it left $NOTHING_AT behind"; exit 1; fi
