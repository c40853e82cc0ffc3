#!/usr/bin/env bash
# long_jobs.sh - jobs several times longer than the consumer's max.poll.interval.ms complete once,
# and a trainer that joins the group while another trains does not drop the busy one: no job is
# trained twice, no result is a redelivery, no trainer leaves its group or restarts.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-longjobs.XXXXXX)
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
. "$SRC/tests/harness/stack.sh"
trap cleanup EXIT

make_blobs 7 3 16 1.5 3000 300
# 6 s is librdkafka's least max.poll.interval.ms here (it may not be below session.timeout.ms)
export ENSFLOW_RDKAFKA_MAX_POLL_INTERVAL_MS=6000
stack_up --trainers 1 --partitions 4
FAIL_LOG=$RUN/stack/logs/trainer-1.log

# jobs of ~15-30 s each: 3 trials, one at a time
STUDY=$(ens study create --dataset "$RUN/data.csv" --trials 3 --epochs 8 --seed 5 \
        --space '{"width":[1024],"layers":3,"batch_size":[4],"lr":0.001}') || fail "study create"
K="ens:{$STUDY}"
for _ in $(seq 600); do
    rcli HGETALL ens:trainers:state | grep -q "^busy $STUDY" && break
    sleep 0.1
done
rcli HGETALL ens:trainers:state | grep -q "^busy $STUDY" || fail "no trainer busy"
sleep 3
# a second trainer joins mid-job: the group rebalances while the first one trains
"$BIN/ensflow-trainer" --run-dir "$RUN/stack" >"$RUN/trainer-late.log" 2>&1 &
STOP_PIDS="$!"
pass "second trainer joined while the first trained"

ens study watch "$STUDY" --timeout 400 >/dev/null 2>"$RUN/watch.err" \
    || { tail -5 "$RUN/watch.err"; fail "study did not complete"; }
[ "$(rcli HGET "$K:study" status)" = complete ] || fail "status $(rcli HGET "$K:study" status)"
pass "study complete"

logs="$RUN/stack/logs/trainer-1.log $RUN/trainer-late.log"
slowest=$(grep -ho 'msg="trained" .* seconds=[0-9.]*' $logs | sed -E 's/.*seconds=//' | sort -n | tail -1)
awk -v s="$slowest" 'BEGIN{exit !(s >= 12)}' || fail "the longest job took ${slowest}s, not 2x the poll interval"
pass "longest job ${slowest}s against a 6 s max.poll.interval.ms"

trained=$(grep -ho "study=$STUDY trial=[^ ]* msg=\"training\"" $logs | sort)
[ "$(echo "$trained" | wc -l)" = 3 ] || { echo "$trained"; fail "$(echo "$trained" | wc -l) trainings for 3 jobs"; }
[ -z "$(echo "$trained" | uniq -d)" ] || fail "trained twice: $(echo "$trained" | uniq -d)"
pass "3 jobs, each trained once"

! grep -h "maximum poll interval\|MAXPOLL\|Unknown member\|commit failed" $logs \
    || fail "a trainer left its group"
! grep -q "redelivery" "$RUN/stack/logs/proposer.log" || fail "a result came twice"
! grep -q "child exited" "$RUN/stack/logs/supervisor.log" 2>/dev/null || fail "a service restarted"
pass "no trainer left its group, no result twice, no restart"
