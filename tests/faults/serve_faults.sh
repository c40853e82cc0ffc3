#!/usr/bin/env bash
# serve_faults.sh - serving under faults, hostile input and sustained load, on the local stack
# with a small deployed ensemble:
#  1. SIGKILL the inference group mid-stream: every request is answered; answers sent twice
#     (delivery is at least once) carry the same request id and `predict` counts them;
#  2. hostile.py: oversized messages, huge dimensions, NaN/Inf, unknown enum symbols,
#     truncated bodies, each dead-lettered or answered with ERROR, memory bounded;
#  3. load: a fixed rate below capacity for LOAD_SECONDS (default 60): nothing lost, p99 shown.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-faults.XXXXXX)
. "$SRC/tests/faults/lib.sh"
trap cleanup EXIT
LOAD_SECONDS=${LOAD_SECONDS:-60}
LOAD_RATE=${LOAD_RATE:-100}
/usr/bin/python3 -c "import avro, confluent_kafka" 2>/dev/null ||
    fail "python3-avro / python3-confluent-kafka missing (scripts/setup.sh installs them)"

make_data 1500 $((LOAD_SECONDS * LOAD_RATE))
stack_up --trainers 2 --partitions 2
STUDY=$(ens study create --dataset "$RUN/data.csv" --trials 3 --epochs 1 --top-k 2 --seed 5)
watch_study "$STUDY" 180 || fail "study did not complete"
wait_front "$STUDY"
ens deploy "$STUDY" > "$RUN/plan.txt" || fail "deploy"
pass "served: $(head -n 1 "$RUN/plan.txt")"

# 1. kill the inference group while 1500 requests stream in at 150 per second
ens predict --input "$RUN/data.csv" --limit 1500 --rate 150 --timeout 90 \
    > "$RUN/kill.json" 2> "$RUN/kill.err" &
pred=$!
sleep 4
kill_child ensflow-inference
wait $pred || fail "predict across the kill: $(cat "$RUN/kill.json") $(tail -n 3 "$RUN/kill.err")"
/usr/bin/python3 - "$RUN/kill.json" <<'PY' || fail "across the kill: $(cat "$RUN/kill.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["requests"] == 1500 and s["answered"] == 1500, s
assert s["errors"] == 0, s
PY
pass "inference killed mid-stream: every request answered, duplicates deduped: $(cat "$RUN/kill.json")"

# 2. hostile input, against the new inference process
ipid=$(child_pid ensflow-inference)
[ -n "$ipid" ] || fail "no inference process"
/usr/bin/python3 "$SRC/tests/faults/hostile.py" "$(cat "$RUN/stack/bootstrap")" "$ipid" 24 ||
    fail "hostile input"
[ "$(child_pid ensflow-inference)" = "$ipid" ] || fail "the inference process changed"

# 3. sustained load
ens predict --input "$RUN/data.csv" --rate "$LOAD_RATE" --window 100000 --timeout 60 \
    > "$RUN/load.json" || fail "load: $(cat "$RUN/load.json")"
/usr/bin/python3 - "$RUN/load.json" "$((LOAD_SECONDS * LOAD_RATE))" <<'PY' || fail "load: $(cat "$RUN/load.json")"
import json, sys
s = json.load(open(sys.argv[1]))
n = int(sys.argv[2])
assert s["requests"] == n and s["answered"] == n and s["errors"] == 0, s
assert s["duplicates"] == 0, s
PY
pass "load: $((LOAD_SECONDS * LOAD_RATE)) requests at $LOAD_RATE/s, none lost: $(cat "$RUN/load.json")"
echo "serve_faults: all checks passed"
