#!/usr/bin/env bash
# distributed.sh REVKIT PROJECT_ROOT: data-parallel training on loopback.
#  1. Two ranks with batch 4 each (--nproc 2 --batch 8 --sync-bn) end with the weights of one process with batch 8,
#     in off, column and full mode of the seed's reversible backbone.
#  2. A distributed run stopped after 2 epochs and resumed on 2 ranks equals one run straight through.
#  3. Two ranks started by hand (torchrun's variables): killing one ends the other with an error within the timeout.
#  4. Under --nproc, a rank killed by a signal is named, once, and the launcher exits with the signal's code.
#  5. The launcher stopped: its ranks stop with it, and nothing is left in the temp folder.
set -u
revkit=$1 root=$2
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
data=$root/assets/coco8/coco8-fit.yaml
common=(--model yolov5-revcol-tiny --drop-path 0 --data "$data" --imgsz 64 --batch 8 --nbs 8 --warmup-epochs 0 --lr0 0.001 --noval
        --project "$work/runs" --seed 3)

# 1. Three optimizer steps (drop path off: its masks are drawn per rank). From-scratch BatchNorm networks amplify rounding: the thread count alone changes
# these weights by about 1e-4 (bn biases near zero compare absolutely below 1e-6, see check --floor); measured:
# 3e-5 to 8e-5. The tolerance is 1e-3.
for mode in off column full; do
  "$revkit" train "${common[@]}" --epochs 3 --memory-mode "$mode" --name "one_$mode" > "$work/one.log" 2>&1 || { cat "$work/one.log"; fail "one rank, $mode"; }
  "$revkit" train "${common[@]}" --epochs 3 --memory-mode "$mode" --name "two_$mode" --nproc 2 --sync-bn > "$work/two.log" 2>&1 || { cat "$work/two.log"; fail "two ranks, $mode"; }
  grep -q "SyncBatchNorm in" "$work/two.log" || fail "no SyncBatchNorm in the two-rank run"
  "$revkit" check --weights "$work/runs/two_$mode/weights/last.safetensors" --reference "$work/runs/one_$mode/weights/last.safetensors" \
    --tolerance 1e-3 | tail -n 2 | tee "$work/check.log"
  grep -q "check passed" "$work/check.log" || fail "two ranks differ from one in mode $mode"
done

# 2. Resume a distributed run.
"$revkit" train "${common[@]}" --epochs 3 --name straight --nproc 2 --sync-bn > /dev/null 2>&1 || fail "straight run"
"$revkit" train "${common[@]}" --epochs 3 --name stopped --nproc 2 --sync-bn --stop-after-epochs 2 > /dev/null 2>&1 || fail "stopped run"
"$revkit" train --resume "$work/runs/stopped" --nproc 2 > "$work/resume.log" 2>&1 || { cat "$work/resume.log"; fail "resumed run"; }
grep -q "3 epochs done" "$work/resume.log" || fail "the resumed run did not finish its epochs"
"$revkit" check --weights "$work/runs/stopped/weights/last.safetensors" --reference "$work/runs/straight/weights/last.safetensors" \
  --tolerance 1e-6 | tail -n 2 | tee "$work/check.log"
grep -q "check passed" "$work/check.log" || fail "the resumed distributed run differs from the straight one"

# 3. A rank killed mid-run.
port=$((20000 + RANDOM % 20000))
for rank in 0 1; do
  WORLD_SIZE=2 RANK=$rank LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port REVKIT_DIST_TIMEOUT=10 OMP_NUM_THREADS=1 \
    "$revkit" train "${common[@]}" --epochs 200 --name killed --exist-ok > "$work/rank$rank.log" 2>&1 &
  eval "pid$rank=$!"
done
for _ in $(seq 60); do grep -q "1/200" "$work/rank0.log" 2>/dev/null && break; sleep 0.5; done
kill -9 "$pid1"
start=$(date +%s)
wait "$pid0"
code=$?
elapsed=$(( $(date +%s) - start ))
tail -n 1 "$work/rank0.log"
[ "$code" -ne 0 ] || fail "rank 0 went on without rank 1"
grep -q "rank 0 of 2: .*failed within the 10 s timeout" "$work/rank0.log" || fail "rank 0's error does not say what happened"
[ "$elapsed" -le 40 ] || fail "rank 0 took $elapsed s to notice"
echo "rank 0 stopped $elapsed s after rank 1 was killed (exit code $code)"

# 4. A rank of --nproc killed mid-run: it had no chance to say why, so the launcher says it.
"$revkit" train "${common[@]}" --epochs 200 --name launched --nproc 2 > "$work/launched.log" 2>&1 &
launcher=$!
for _ in $(seq 60); do grep -q "1/200" "$work/launched.log" 2>/dev/null && break; sleep 0.5; done
for child in $(pgrep -P "$launcher"); do
  tr '\0' '\n' < "/proc/$child/environ" | grep -qx "RANK=1" && kill -9 "$child"
done
wait "$launcher"
code=$?
tail -n 1 "$work/launched.log"
[ "$code" -eq 137 ] || fail "the launcher exited with $code, not 137, after rank 1 was killed"
[ "$(grep -c "rank 1 of 2 was stopped by signal 9" "$work/launched.log")" -eq 1 ] || fail "the killed rank is not named once"

# 5. SIGTERM to the launcher (as Ctrl-C or a job scheduler would send): forwarded to the ranks, waited for. SIGKILL,
# which it cannot catch: the ranks go with it. Either way no file is left behind.
for stop in TERM KILL; do
  mkdir -p "$work/tmp_$stop"
  TMPDIR="$work/tmp_$stop" "$revkit" train "${common[@]}" --epochs 200 --name "stop_$stop" --nproc 2 > "$work/stop.log" 2>&1 &
  launcher=$!
  for _ in $(seq 60); do grep -q "1/200" "$work/stop.log" 2>/dev/null && break; sleep 0.5; done
  ranks=$(pgrep -P "$launcher")
  [ -n "$ranks" ] || fail "no ranks under the launcher"
  kill -"$stop" "$launcher"
  wait "$launcher"
  for _ in $(seq 20); do
    alive=""
    for rank in $ranks; do kill -0 "$rank" 2>/dev/null && alive="$alive $rank"; done
    [ -z "$alive" ] && break
    sleep 0.5
  done
  [ -z "$alive" ] || fail "ranks$alive still run after SIG$stop to the launcher"
  [ -z "$(ls -A "$work/tmp_$stop")" ] || fail "SIG$stop to the launcher left $(ls "$work/tmp_$stop") behind"
done
echo "the ranks stopped with their launcher"
echo "PASS"
