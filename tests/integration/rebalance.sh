#!/usr/bin/env bash
# rebalance.sh - groups joining and leaving under a steady stream: while `ensflow predict
# --rate` streams requests, a second inference group joins the consumer group and later
# leaves. Each rebalance takes partitions from a group that holds batches in flight; it
# answers and commits them before it lets go, so every request is answered exactly once.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-rebal.XXXXXX)
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
. "$SRC/tests/harness/stack.sh"
FAIL_LOG="$RUN/stack/logs/inference.log"
trap cleanup EXIT

# 3 classes, 20 features; 4000 test rows at 250 requests/s: about 16 s of stream (after
# predict's first probe, ~2 s). Batches wait up to 50 ms for company, so a revocation usually
# finds requests in hand. The broker refuses commits while the group rebalances, so the next
# owner starts below what was answered and skips up to the answered offset; with 4 requests a
# batch that span covers several batches, filled while earlier ones finish (a cache lowered
# by a finished batch of skipped requests once answered the rest again). The "offsets" debug
# lines say where each owner started and what it skipped.
export ENSFLOW_MAX_WAIT_US=50000 ENSFLOW_MAX_BATCH=4 ENSFLOW_DEBUG=offsets
make_blobs 4321 3 20 1.3 1800 4000

stack_up --trainers 2 --partitions 2
study_done --trials 3 --epochs 1 --top-k 2 --seed 11
ens deploy "$STUDY" > "$RUN/plan.txt" || fail "deploy"
pass "serving $(head -n 1 "$RUN/plan.txt")"

# answered offsets left by an earlier life of the broker (the embedded one keeps no log across
# a restart; Redis keeps its data): far ahead of the new log, and the group has no commit
# there yet. They must not make the group skip requests nobody answered.
ANSWERED=ens:serving:answered:ensflow-inference
rcli HSET $ANSWERED ensflow.inference.requests/0 100000 ensflow.inference.requests/1 100000 \
    > /dev/null

ens predict --input "$RUN/data.csv" --rate 250 --linger 3 --timeout 60 \
    > "$RUN/predict.json" 2> "$RUN/predict.err" &
PRED_PID=$!
STOP_PIDS=$PRED_PID
sleep 4
"$BIN/ensflow-inference" --run-dir "$RUN/stack" --instance joiner > "$RUN/joiner.log" 2>&1 &
JOINER=$!
STOP_PIDS="$STOP_PIDS $JOINER"
sleep 5
kill -TERM "$JOINER"
wait "$JOINER" || fail "the joining group did not stop cleanly: $(tail -n 20 "$RUN/joiner.log")"
pass "a second group joined for 5 s and left"
wait "$PRED_PID" || fail "predict: $(cat "$RUN/predict.json" "$RUN/predict.err")"
STOP_PIDS=

python3 - "$RUN/predict.json" <<'PY' \
    || fail "predict: $(cat "$RUN/predict.json"; grep -v '^predict:' "$RUN/predict.err")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["requests"] == 4000 and s["answered"] == 4000, s
assert s["duplicates"] == 0 and s["errors"] == 0, s
PY
# the longest run of answered-but-uncommitted requests a new owner skipped
SKIPPED=$(sed -nE 's/.*answered offset read" partition=[0-9]+ committed=([0-9]+) answered=([0-9]+).*/\1 \2/p' \
    "$RUN/stack/logs/inference.log" "$RUN/joiner.log" | awk '{d = $2 - $1 + 1; if (d > m) m = d} END {print m + 0}')
pass "4000 requests answered exactly once across two rebalances (a new owner skipped up to $SKIPPED answered requests, 4 a batch)"
# not a failure: the span depends on how long the broker refused commits (33-111 in the runs
# recorded in the README), but a run without one did not test the skip across batches
[ "$SKIPPED" -gt 4 ] || echo "WARNING: no new owner skipped more than one batch; the skip across batches was not exercised"
for part in 0 1; do
    LAST=$(rcli HGET $ANSWERED ensflow.inference.requests/$part)
    [ -n "$LAST" ] && [ "$LAST" -lt 100000 ] \
        || fail "partition $part: the stale answered offset is still there ($LAST)"
done
pass "the stale answered offsets were dropped, not trusted"

# the joiner served the plan, and the first group gave partitions up twice (join, leave)
grep -q 'msg="inference up".*plan_version=[0-9]' "$RUN/joiner.log" \
    || fail "the joiner did not serve: $(tail -n 20 "$RUN/joiner.log")"
DRAINS=$(grep -c 'msg="drained before giving up partitions".*ok=1' "$RUN/stack/logs/inference.log" || true)
[ "$DRAINS" -ge 2 ] || fail "the first group drained $DRAINS times, expected 2"
IN_HAND=$(sed -nE 's/.*drained before giving up partitions" requests=([0-9]+).*/\1/p' \
    "$RUN/stack/logs/inference.log" "$RUN/joiner.log" | awk '{s += $1} END {print s + 0}')
pass "the first group drained at both rebalances; $IN_HAND requests were in hand"
echo "rebalance: all checks passed"
