# lib.sh - helpers shared by the fault tests: a generated data set, the local stack, and the
# pids of its supervised children. Sourced; expects BIN, SRC and RUN to be set.
. "$SRC/tests/harness/stack.sh"
KEEP_RUN=${KEEP_FAULTS:-${KEEP_RUN:-0}}

# make_data N_TRAIN N_TEST: a 3-class problem with 24 features, as tests/integration/e2e.sh
make_data() { make_blobs 1234 3 24 1.3 "$1" "$2"; }

# child_pid NAME: pid of the supervisor's child whose program is NAME (redis-server,
# ensflow-evaluator, ...); the first one for trainers. Empty when none runs.
child_pid() {
    local sup pid exe
    sup=$(cat "$RUN/stack/supervisor.pid" 2>/dev/null) || return 0
    for pid in $(pgrep -P "$sup"); do
        exe=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | awk '{print $1}')
        if [ "$(basename "$exe" 2>/dev/null)" = "$1" ]; then echo "$pid"; return 0; fi
    done
}

# kill_child NAME: SIGKILL it and wait until the supervisor has started a new one.
kill_child() {
    local old new
    old=$(child_pid "$1")
    [ -n "$old" ] || fail "no $1 child to kill"
    kill -KILL "$old"
    for _ in $(seq 100); do
        new=$(child_pid "$1")
        if [ -n "$new" ] && [ "$new" != "$old" ]; then
            echo "killed $1 (pid $old), restarted as pid $new"
            return 0
        fi
        sleep 0.1
    done
    fail "$1 was not restarted within 10 s"
}

# watch_study STUDY TIMEOUT: wait until it is trained and evaluated (Redis may be restarting).
watch_study() {
    local t0=$SECONDS
    while [ $((SECONDS - t0)) -lt "$2" ]; do
        ens study watch "$1" --timeout $(($2 - (SECONDS - t0))) >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

# check_trials STUDY N: every trial reported exactly once and every trained model evaluated.
check_trials() {
    local done_n failed_n both lib_n hashes
    done_n=$(rcli SCARD "ens:{$1}:trials:done")
    failed_n=$(rcli SCARD "ens:{$1}:trials:failed")
    both=$(rcli SINTERCARD 2 "ens:{$1}:trials:done" "ens:{$1}:trials:failed" 2>/dev/null ||
           rcli SINTER "ens:{$1}:trials:done" "ens:{$1}:trials:failed" | grep -c .)
    [ $((done_n + failed_n)) -eq "$2" ] ||
        fail "trials reported: $done_n done + $failed_n failed, expected $2"
    [ "${both:-0}" -eq 0 ] || fail "$both trial(s) both done and failed"
    [ "$done_n" -ge 1 ] || fail "no trial succeeded"
    hashes=$(rcli --scan --pattern "ens:{$1}:trial:*" | grep -c . || true)
    [ "$hashes" -eq "$2" ] || fail "$hashes trial hashes, expected $2"
    lib_n=$(rcli SCARD "ens:{$1}:library")
    [ "$lib_n" -eq "$done_n" ] || fail "$lib_n models evaluated, $done_n trained"
    pass "every one of $2 trials reported once ($done_n done, $failed_n failed), $lib_n evaluated"
}

# wait_front STUDY: until the selector has published a front (it follows the last evaluation).
wait_front() {
    for _ in $(seq 120); do
        ens front "$1" > "$RUN/front.txt" 2>/dev/null &&
            grep -Eq '^(single|topk)[0-9]+-n' "$RUN/front.txt" && return 0
        sleep 0.5
    done
    fail "no front for $1: $(cat "$RUN/front.txt")"
}
