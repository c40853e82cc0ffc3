#!/usr/bin/env bash
# plan_change.sh - a plan change under a steady stream: while `ensflow predict --rate` streams
# requests, a second ensemble of the front is deployed; every request is answered exactly once
# (none lost, none twice, late duplicates counted for a few seconds after the last answer) and
# the answers carry both plan versions, each with its own ensemble id.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-plan.XXXXXX)
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
. "$SRC/tests/harness/stack.sh"
FAIL_LOG="$RUN/stack/logs/inference.log"
trap cleanup EXIT

# 3 classes, 20 features; 2400 test rows streamed at 200 requests/s: about 12 s of stream
make_blobs 4321 3 20 1.3 1800 2400

stack_up --trainers 2 --partitions 2
study_done --trials 4 --epochs 1 --top-k 3 --seed 11
ens front "$STUDY" > "$RUN/front.txt" || fail "ensflow front"
# the table's rows: ensemble, method, members, val_acc, hold_acc, ms/sample, memory_MB
mapfile -t IDS < <(awk 'NR > 2 && NF == 7 && $3 ~ /^[0-9]+$/ {print $1}' "$RUN/front.txt")
[ "${#IDS[@]}" -ge 2 ] || fail "the front needs two ensembles: $(cat "$RUN/front.txt")"
FIRST=${IDS[0]}
SECOND=${IDS[1]}
ens deploy "$STUDY" --ensemble "$FIRST" > "$RUN/plan1.txt" || fail "first deploy"
V1=$(sed -nE 's/.*version ([0-9]+).*/\1/p' "$RUN/plan1.txt" | head -n 1)
pass "serving $FIRST (plan version $V1)"

ens predict --input "$RUN/data.csv" --rate 200 --linger 3 --timeout 60 \
    > "$RUN/predict.json" 2> "$RUN/predict.err" &
PRED_PID=$!
STOP_PIDS=$PRED_PID
sleep 4
ens deploy "$STUDY" --ensemble "$SECOND" > "$RUN/plan2.txt" || fail "second deploy under load"
V2=$(sed -nE 's/.*version ([0-9]+).*/\1/p' "$RUN/plan2.txt" | head -n 1)
pass "deployed $SECOND (plan version $V2) while the stream ran"
wait "$PRED_PID" || fail "predict: $(cat "$RUN/predict.json" "$RUN/predict.err")"
STOP_PIDS=
python3 - "$RUN/predict.json" "$V1" "$FIRST" "$V2" "$SECOND" <<'PY' || fail "predict: $(cat "$RUN/predict.json")"
import json, sys
s = json.load(open(sys.argv[1]))
v1, e1, v2, e2 = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
assert s["requests"] == 2400 and s["answered"] == 2400, s
assert s["duplicates"] == 0 and s["errors"] == 0, s
by = {v["plan_version"]: v for v in s["versions"]}
assert set(by) == {v1, v2}, ("versions", by)
assert by[v1]["ensemble_id"] == e1 and by[v2]["ensemble_id"] == e2, by
assert by[v1]["answered"] > 0 and by[v2]["answered"] > 0, by
assert sum(v["answered"] for v in s["versions"]) == 2400, by
print("answers per version:", {k: v["answered"] for k, v in by.items()})
PY
pass "2400 requests answered exactly once across the plan change: $(cat "$RUN/predict.json")"
echo "plan_change: all checks passed"
