#!/usr/bin/env bash
# gpu_or_skip.sh REVKIT CMD...: runs CMD when `REVKIT --version` sees a GPU; otherwise says so and exits 77,
# which CTest reports as Skipped.
revkit=$1
shift
if ! "$revkit" --version | grep -Eq '^CUDA [0-9.]+, [1-9][0-9]* GPU'; then
  echo "skipped: no GPU ($("$revkit" --version | grep '^CUDA'))"
  exit 77
fi
exec "$@"
