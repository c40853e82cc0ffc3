#!/usr/bin/env bash
# asha_faults.sh - an ASHA study on the embedded stack with two trainers, one trainer killed
# (kill -9) mid-job and the proposer killed (kill -9) mid-study; the supervisor restarts both.
# The study must complete with nothing lost and nothing decided twice: every decision applied
# once, every trial's rung history complete, every promotion out of a rung the trial reached.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-asha.XXXXXX)
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
. "$SRC/tests/harness/stack.sh"
trap cleanup EXIT

make_blobs 99 3 16 1.5 6000 300

stack_up --trainers 2 --partitions 2

# rungs 0.5 / 1.5 / 4.5 epochs (fractions of an epoch included), eta 3
STUDY=$(ens study create --dataset "$RUN/data.csv" --scheduler asha --trials 12 --epochs 4.5 \
        --min-epochs 0.5 --eta 3 --seed 3 --space '{"width":[512,1024],"layers":2,"batch_size":[8],"lr":{"log_uniform":[0.001,0.01]}}')
[ -n "$STUDY" ] || fail "study create printed no id"
K="ens:{$STUDY}"

wait_for() { # wait_for SECONDS CMD...: until CMD succeeds
    local t=$1; shift
    for _ in $(seq $((t * 5))); do "$@" && return 0; sleep 0.2; done
    return 1
}
decisions() { rcli HGET "$K:asha" decisions 2>/dev/null || echo 0; }
busy_trainer() { rcli HGETALL ens:trainers:state | paste - - | awk '$2 ~ /^busy/{print $1; f=1; exit} END{exit !f}'; }

wait_for 120 bash -c "[ \"\$(redis-cli -p $REDIS_PORT HGET '$K:asha' decisions)\" -ge 4 ] 2>/dev/null" \
    || fail "no decisions"
# a trainer mid-job: its id is host-pid
victim=""
for _ in $(seq 1200); do victim=$(busy_trainer) && break; sleep 0.05; done
[ -n "$victim" ] || fail "no busy trainer"
vpid=${victim##*-}
sleep 0.5
kill -9 "$vpid" || fail "kill trainer $vpid"
pass "killed trainer $victim mid-job"

wait_for 120 bash -c "[ \"\$(redis-cli -p $REDIS_PORT HGET '$K:asha' decisions)\" -ge 10 ] 2>/dev/null" \
    || fail "study stalled after the trainer kill"
ppid_=$(pgrep -f "ensflow-proposer --run-dir $RUN/stack" | head -n 1)
[ -n "$ppid_" ] || fail "no proposer"
kill -9 "$ppid_"
pass "killed proposer $ppid_ at decision $(decisions)"

ens study watch "$STUDY" --timeout 600 >/dev/null 2>"$RUN/watch.err" || { tail -30 "$RUN/watch.err"; fail "study did not complete"; }
[ "$(rcli HGET "$K:study" status)" = complete ] || fail "status $(rcli HGET "$K:study" status)"
[ "$(rcli HLEN "$K:inflight")" = 0 ] || fail "jobs still in flight"
[ "$(rcli HLEN "$K:outbox")" = 0 ] || fail "outbox not empty"
pass "study complete after $(decisions) decisions"

# the decision log: one entry per decision number, no (trial, rung) twice
n=$(decisions)
[ "$(rcli HLEN "$K:decisions")" = "$n" ] || fail "decision log has $(rcli HLEN "$K:decisions") of $n"
dups=$(rcli HVALS "$K:decisions" | awk '{print $2, $4}' | sort | uniq -d)
[ -z "$dups" ] || fail "decided twice: $dups"
news=$(rcli HVALS "$K:decisions" | grep -c '^new ')
[ "$news" = 12 ] || fail "$news new configurations, expected 12"
pass "$n decisions, each (trial, rung) once, 12 configurations"

# every trial's history: a result (model or error) for every rung it was sent to, and
# every promotion out of a rung where the trial had a result
while read -r action trial b k from to; do
    [ -n "$(rcli HGET "$K:trial:$trial" "r${k}_model")$(rcli HGET "$K:trial:$trial" "r${k}_error")" ] \
        || fail "$trial: no outcome at rung $k"
    if [ "$action" = promote ]; then
        [ -n "$(rcli HGET "$K:trial:$trial" "r$((k - 1))_acc")" ] || fail "$trial promoted without a rung $((k - 1)) result"
    fi
done < <(rcli HVALS "$K:decisions")
pass "every trial's history complete and consistent"

# the killed trainer's job resumed from a checkpoint (or finished elsewhere), never lost
grep -h 'msg="training"' "$RUN"/stack/logs/trainer-*.log | grep -q "resume_at=0[^.]" || true
resumed=$(grep -h 'msg="training"' "$RUN"/stack/logs/trainer-*.log | grep -c 'attempt=2' || true)
pass "jobs started again after the trainer kill: $resumed"
models=$(rcli SCARD "$K:models")
wait_for 120 bash -c "[ \"\$(redis-cli -p $REDIS_PORT SCARD '$K:library')\" -ge $models ]" || fail "not every model evaluated"
pass "every model evaluated ($models)"
