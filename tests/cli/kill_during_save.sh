#!/usr/bin/env bash
# kill_during_save.sh REVKIT PROJECT_ROOT: a training process killed (SIGKILL) while it writes its checkpoint
# leaves the previous checkpoint loadable, and the run resumes from it to the end.
set -u
revkit=$1 root=$2
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# The seed's model: its state file is large enough (about 380 MB) to take a while to write.
"$revkit" train --model yolov5-revcol-tiny --data "$root/assets/coco8/coco8.yaml" --imgsz 64 --batch 4 --epochs 6 \
  --project "$work" --name run --noval > "$work/log" 2>&1 &
pid=$!
weights=$work/run/weights
killed=0
for _ in $(seq 6000); do
  # A previous checkpoint exists and the next one is being written, to a file without a name (O_TMPFILE, seen as
  # "<folder>/#<inode> (deleted)") or, where the file system has none, to its .tmp name: kill now.
  if [ -f "$weights/last.state.safetensors" ]; then
    if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "$weights/#[0-9]* (deleted)"; then
      # Stopped first: an unnamed file being written, not one named an instant before its rename, is the case.
      kill -STOP "$pid"
      if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "$weights/#[0-9]* (deleted)" &&
        ! ls "$weights"/*.tmp.* >/dev/null 2>&1; then
        kill -9 "$pid"; killed=unnamed; break
      fi
      kill -CONT "$pid"
    elif ls "$weights"/last.state.safetensors.tmp.* >/dev/null 2>&1; then
      kill -9 "$pid"; killed=named; break
    fi
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.01
done
wait "$pid" 2>/dev/null
[ "$killed" != 0 ] || fail "never caught the process writing a checkpoint"
echo "killed while writing ($killed file): $(ls "$weights")"
if [ "$killed" = unnamed ] && ls "$weights"/*.tmp.* >/dev/null 2>&1; then
  fail "the kill left a temporary file behind"
fi
"$revkit" check --weights "$weights/last.state.safetensors" --reference "$weights/last.state.safetensors" | tail -n 1 | grep -q "check passed" \
  || fail "the previous checkpoint does not load"
"$revkit" train --resume "$work/run" > "$work/resume.log" 2>&1 || { tail -n 5 "$work/resume.log"; fail "resume failed"; }
grep -q "6 epochs done" "$work/resume.log" || fail "the resumed run did not finish"
grep -o "resuming .* from epoch [0-9]* of 6" "$work/resume.log"
ls "$weights" | grep -q "tmp" && fail "a temporary file was left behind: $(ls "$weights")"
echo "PASS"
