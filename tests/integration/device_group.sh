#!/usr/bin/env bash
# device_group.sh - one ensflow-inference process with two devices (--devices 2, a thread
# each) serves a deployed ensemble: the plan places rows on both devices, every request is
# answered once with the single-process probabilities (within 1e-5); the serial loop
# (--overlap 0) answers the same.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-devgrp.XXXXXX)
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
. "$SRC/tests/harness/stack.sh"
FAIL_LOG="$RUN/inference.log"
trap cleanup EXIT

make_blobs 41 4 16 1.2 2400 400

stack_up --trainers 2 --inference 0 --partitions 2
study_done --trials 4 --epochs 1 --top-k 4 --seed 5

"$BIN/ensflow-inference" --run-dir "$RUN/stack" --instance dg --devices 2 --max-batch 16 \
    > "$RUN/inference.log" 2>&1 &
DG=$!
STOP_PIDS="$STOP_PIDS $DG"
for _ in $(seq 100); do # both devices registered before the placer allocates
    [ "$(rcli --scan --pattern 'ens:device:dg-r*' | wc -l)" -ge 2 ] && break
    sleep 0.1
done
ens deploy "$STUDY" --timeout 90 > "$RUN/plan.txt" || fail "deploy to the device group"
grep -q ' on dg-r0 ' "$RUN/plan.txt" || fail "no plan row on device dg-r0: $(cat "$RUN/plan.txt")"
grep -q ' on dg-r1 ' "$RUN/plan.txt" || fail "no plan row on device dg-r1: $(cat "$RUN/plan.txt")"
grep -q 'rank=0/2 .*split=plan' "$RUN/inference.log" || fail "device 0 did not follow the plan"
pass "plan rows on both devices of one process"

check_answers() { # what, output file
    grep -q '"answered": 400' "$RUN/predict.json" || fail "$1: $(cat "$RUN/predict.json")"
    grep -q '"duplicates": 0' "$RUN/predict.json" || fail "$1 duplicates: $(cat "$RUN/predict.json")"
    same_probs "$2" "$RUN/offline.bin" $((400 * 4)) \
        || fail "$1: probabilities differ from one engine"
}
ens predict --input "$RUN/data.csv" --offline --output "$RUN/offline.bin" || fail "offline"
ens predict --input "$RUN/data.csv" --output "$RUN/online.bin" > "$RUN/predict.json" \
    || fail "predict through the device group: $(cat "$RUN/predict.json")"
check_answers "device group" "$RUN/online.bin"
pass "400 requests answered once each by 2 devices, as one engine computes them (1e-5)"

# the group measures its speed against the placer's prediction and publishes it with its
# devices (heartbeat every 5 s); the placer's next plan and plan --explain use it
ens predict --input "$RUN/data.csv" > "$RUN/predict.json" || fail "second stream"
SPEED=
for _ in $(seq 70); do
    SPEED=$(rcli HGET ens:device:dg-r0 speed)
    awk -v s="$SPEED" 'BEGIN {exit !(s > 0)}' && break
    sleep 0.1
done
awk -v s="$SPEED" 'BEGIN {exit !(s > 0)}' || fail "no measured speed for dg-r0 ('$SPEED')"
ens plan "$STUDY" --explain > "$RUN/explain.txt" || fail "plan --explain"
grep -Eq "dg-r0 .*speed [0-9]" "$RUN/explain.txt" || fail "explain: $(cat "$RUN/explain.txt")"
pass "the group measured its speed against the prediction: $SPEED (plan --explain shows it)"

# the serial loop (batch, predict, answer in turn) on one device, the same plan in force
kill "$DG" && wait "$DG" 2>/dev/null || true
"$BIN/ensflow-inference" --run-dir "$RUN/stack" --instance dg --overlap 0 \
    > "$RUN/inference.log" 2>&1 &
STOP_PIDS="$STOP_PIDS $!"
ens predict --input "$RUN/data.csv" --output "$RUN/serial.bin" > "$RUN/predict.json" \
    || fail "predict through the serial loop: $(cat "$RUN/predict.json")"
grep -q 'overlap=0' "$RUN/inference.log" || fail "the serial loop did not start"
check_answers "serial loop" "$RUN/serial.bin"
pass "the serial loop (--overlap 0) answers the same, once each"
echo "device_group: all checks passed"
