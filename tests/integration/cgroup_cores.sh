#!/usr/bin/env bash
# cgroup_cores.sh - ensflow-inference started in a cgroup limited to 1 CPU announces 1 core
# (and no more memory than the cgroup's limit) in the device registry, not the machine's
# cores. Needs a writable cgroup v1 cpu hierarchy or a cgroup v2 one with the cpu controller
# delegated (root in CI); skipped (77) where neither is writable.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-cgroup.XXXXXX)
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
. "$SRC/tests/harness/stack.sh"
FAIL_LOG="$RUN/inference.log"
CG=
cg_cleanup() {
    cleanup
    [ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
}
trap cg_cleanup EXIT

NAME="ensflow-test-$$"
MEM=$((256 * 1024 * 1024))
if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null &&
    mkdir "/sys/fs/cgroup/$NAME" 2>/dev/null; then
    CG="/sys/fs/cgroup/$NAME"
    echo "100000 100000" >"$CG/cpu.max" || fail "write cpu.max"
    MEMCG=$CG
    echo "$MEM" >"$CG/memory.max" 2>/dev/null || MEMCG=
elif [ -d /sys/fs/cgroup/cpu ] && mkdir "/sys/fs/cgroup/cpu/$NAME" 2>/dev/null; then
    CG="/sys/fs/cgroup/cpu/$NAME"
    echo 100000 >"$CG/cpu.cfs_period_us" || fail "write cfs_period_us"
    echo 100000 >"$CG/cpu.cfs_quota_us" || fail "write cfs_quota_us"
    MEMCG= # the memory controller is another hierarchy in v1: not limited here
else
    echo "cgroup_cores: skipped: no writable cgroup to start the service in"
    exit 77
fi
[ "$(nproc --all)" -gt 1 ] || echo "note: 1 CPU machine: the limit cannot show below the mask"

stack_up --trainers 1 --inference 0
# The subshell joins the cgroup, then becomes the service (exec keeps the pid).
(echo "$BASHPID" >"$CG/cgroup.procs" && exec "$BIN/ensflow-inference" --run-dir "$RUN/stack" \
    --instance cg) >"$RUN/inference.log" 2>&1 &
STOP_PIDS="$STOP_PIDS $!"
CORES=
for _ in $(seq 100); do
    CORES=$(rcli HGET ens:device:cg-r0 cores)
    [ -n "$CORES" ] && break
    sleep 0.1
done
[ "$CORES" = 1 ] || fail "announced cores '$CORES' in a 1-CPU cgroup (machine: $(nproc --all))"
pass "ensflow-inference in a 1-CPU cgroup announces 1 core (the machine has $(nproc --all))"
if [ -n "$MEMCG" ]; then
    BYTES=$(rcli HGET ens:device:cg-r0 memory_bytes)
    [ "${BYTES:-0}" -gt 0 ] && [ "$BYTES" -le "$MEM" ] ||
        fail "announced memory '$BYTES' over the cgroup's $MEM"
    pass "and no more memory than the cgroup's limit ($BYTES <= $MEM)"
fi
echo "cgroup_cores: all checks passed"
