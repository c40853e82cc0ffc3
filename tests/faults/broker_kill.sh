#!/usr/bin/env bash
# broker_kill.sh - kill -9 the embedded broker mid-study. It loses every topic, so the jobs in
# flight and the results on their way are gone; the supervisor starts a new broker and every
# service over on it, the proposer issues again the jobs no trainer holds (trainers report a
# job they finished again from Redis), and the study completes with every trial reported once.
# Then a new study runs on the new broker.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-brokerkill.XXXXXX)
. "$SRC/tests/faults/lib.sh"
trap cleanup EXIT
TRIALS=8

make_data 3000 300
# jobs are issued again 8 s after they were sent when no trainer holds them
ENSFLOW_REISSUE_MS=8000 stack_up --trainers 2 --partitions 2
STUDY=$(ens study create --dataset "$RUN/data.csv" --trials $TRIALS --epochs 3 --seed 21 \
        --space '{"width":[512],"layers":2,"batch_size":[8],"lr":0.01}')
[ -n "$STUDY" ] || fail "study create printed no id"
K="ens:{$STUDY}"
for _ in $(seq 300); do
    [ "$(rcli SCARD "$K:trials:done" 2>/dev/null || echo 0)" -ge 1 ] && break
    sleep 0.2
done
[ "$(rcli SCARD "$K:trials:done")" -ge 1 ] || fail "no trial done before the kill"
[ "$(rcli HLEN "$K:inflight")" -ge 1 ] || fail "no job in flight at the kill"
old_bootstrap=$(cat "$RUN/stack/bootstrap")
kill_child ensflow-broker
for _ in $(seq 150); do
    [ -s "$RUN/stack/bootstrap" ] && [ "$(cat "$RUN/stack/bootstrap")" != "$old_bootstrap" ] && break
    sleep 0.1
done
[ "$(cat "$RUN/stack/bootstrap")" != "$old_bootstrap" ] || fail "no new broker address"
pass "broker killed with $(rcli HLEN "$K:inflight") job(s) in flight; new broker at $(cat "$RUN/stack/bootstrap")"

watch_study "$STUDY" 300 || fail "study did not complete after the broker kill"
[ "$(rcli HGET "$K:study" status)" = complete ] || fail "status $(rcli HGET "$K:study" status)"
done_n=$(rcli SCARD "$K:trials:done")
failed_n=$(rcli SCARD "$K:trials:failed")
[ $((done_n + failed_n)) -eq $TRIALS ] || fail "trials reported: $done_n done + $failed_n failed"
n=$(rcli HGET "$K:asha" decisions)
[ "$(rcli HLEN "$K:decisions")" = "$n" ] || fail "decision log has $(rcli HLEN "$K:decisions") of $n"
[ -z "$(rcli HVALS "$K:decisions" | awk '{print $2, $4}' | sort | uniq -d)" ] || fail "decided twice"
grep -q "issued again" "$RUN/stack/logs/proposer.log" || fail "no job was issued again"
pass "study complete: $done_n done, $failed_n failed, each reported once, $n decisions"

STUDY2=$(ens study create --dataset "$RUN/data.csv" --trials 2 --epochs 1 --seed 22)
watch_study "$STUDY2" 120 || fail "a new study did not run on the new broker"
[ "$(rcli SCARD "ens:{$STUDY2}:trials:done")" -eq 2 ] || fail "new study: not 2 trials done"
pass "a new study ran on the new broker"
