#!/usr/bin/env bash
# cuda_on_demand.sh REVKIT: a training step on the CPU never loads LibTorch's CUDA library; `revkit --version`,
# which lists the GPUs, loads it when this build has CUDA (the dynamic loader's own log says what it loaded).
set -uo pipefail
revkit=$1
loads_cuda() {  # the whole log first: grep -q stopping early would end the command with SIGPIPE
  local log
  log=$(LD_DEBUG=files "$@" 2>&1 >/dev/null)
  grep -q 'file=[^ ]*libtorch_cuda\.so' <<<"$log"
}
if loads_cuda "$revkit" bench --backbone revcol_tiny --columns 2 --imgsz 32 --batch 1 --steps 1 --json; then
  echo "a training step on the CPU loaded libtorch_cuda"; exit 1
fi
version=$("$revkit" --version) || { echo "revkit --version failed"; exit 1; }
echo "$version"
if grep -q '^CUDA no' <<<"$version"; then
  loads_cuda "$revkit" --version && { echo "--version loaded libtorch_cuda in a build without CUDA"; exit 1; }
else
  loads_cuda "$revkit" --version || { echo "--version reports CUDA but did not load libtorch_cuda"; exit 1; }
fi
echo "libtorch_cuda loaded only when CUDA is wanted"
