#!/usr/bin/env bash
# study_kills.sh - during a study on the local stack, SIGKILL the evaluator, the selector, the
# placer and redis-server (append-only file on), each restarted by the `ensflow up`
# supervisor; the study completes with every trial reported exactly once, every trained model
# evaluated, a front, and a deploy served. (Proposer and trainer kills: asha_faults.sh.)
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-faults.XXXXXX)
. "$SRC/tests/faults/lib.sh"
trap cleanup EXIT
TRIALS=6

make_data 3000 300
stack_up --trainers 2 --partitions 2
STUDY=$(ens study create --dataset "$RUN/data.csv" --trials $TRIALS --epochs 2 --top-k 3 --seed 11)
[ -n "$STUDY" ] || fail "study create printed no id"

kill_child ensflow-evaluator
sleep 2
kill_child ensflow-selector
# redis mid-study: wait for the first finished trial, then kill it
for _ in $(seq 300); do
    [ "$(rcli SCARD "ens:{$STUDY}:trials:done" 2>/dev/null || echo 0)" -ge 1 ] && break
    sleep 0.2
done
kill_child redis-server
for _ in $(seq 100); do rcli ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
rcli ping | grep -q PONG || fail "redis-server did not come back on port $REDIS_PORT"
pass "redis-server restarted on the same port with its append-only file"
kill_child ensflow-evaluator
kill_child ensflow-placer

watch_study "$STUDY" 240 || fail "study did not complete after the kills"
check_trials "$STUDY" $TRIALS
wait_front "$STUDY"
pass "front after the kills: $(head -n 1 "$RUN/front.txt")"
ens deploy "$STUDY" --timeout 90 > "$RUN/plan.txt" || fail "deploy after the placer was killed"
ens predict --input "$RUN/data.csv" --limit 100 > "$RUN/predict.json" || fail "predict"
grep -q '"answered": 100' "$RUN/predict.json" || fail "predict: $(cat "$RUN/predict.json")"
pass "deployed and served after the kills: $(cat "$RUN/predict.json")"
restarts=$(grep -c "child exited, restarting" "$RUN/stack/logs/supervisor.log" || true)
echo "study_kills: all checks passed ($restarts restarts)"
