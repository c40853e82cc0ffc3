#!/usr/bin/env bash
# mpi_sshd.sh - the MPI image's launch path, locally: sshd started by scripts/mpi/worker.sh
# with the configuration scripts/mpi/ssh-config.sh generates (unprivileged port, a host key of
# its own), and the launcher's `mpirun -x ...` reaching ranks through it over ssh (not a local
# fork: the ranks run on 127.0.0.2, which Open MPI does not take for this host). Every -x
# variable reaches every rank, and ensflow-inference-mpi started this way registers both
# ranks' devices under the instance id it got only through -x.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
for tool in mpirun /usr/sbin/sshd ssh ssh-keygen; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (openmpi-bin, openssh-server, openssh-client)"; exit 77; }
done
[ -x "$BIN/ensflow-inference-mpi" ] || { echo "SKIP: ensflow-inference-mpi not built"; exit 77; }
RUN=$(mktemp -d /tmp/ensflow-mpissh.XXXXXX)
. "$SRC/tests/harness/stack.sh"
FAIL_LOG="$RUN/sshd.log"
trap cleanup EXIT

PORT=$((30000 + ($$ % 20000)))
bash "$SRC/scripts/mpi/ssh-config.sh" "$RUN/etc" "$PORT" "$RUN/sshd" "$RUN/auth" >/dev/null ||
    fail "ssh-config.sh"
# what the MPI Operator mounts at sshAuthMountPath: a key pair and authorized_keys
mkdir -p "$RUN/auth" && chmod 700 "$RUN/auth"
ssh-keygen -q -t ed25519 -N '' -f "$RUN/auth/id_rsa" || fail "ssh-keygen"
cp "$RUN/auth/id_rsa.pub" "$RUN/auth/authorized_keys"
/usr/sbin/sshd -t -f "$RUN/etc/sshd_config" 2>/dev/null &&
    fail "sshd accepted the config before worker.sh made a host key"
# As root (CI) sshd also wants its privilege separation directory; in the image it runs as
# its user and needs none.
[ "$(id -u)" != 0 ] || [ -d /run/sshd ] || mkdir -m 755 /run/sshd || fail "mkdir /run/sshd"
sh "$SRC/scripts/mpi/worker.sh" "$RUN/etc/sshd_config" >"$RUN/sshd.log" 2>&1 &
STOP_PIDS="$STOP_PIDS $!"
for _ in $(seq 50); do
    [ -s "$RUN/sshd/sshd.pid" ] && break
    sleep 0.1
done
[ -s "$RUN/sshd/ssh_host_ed25519_key" ] || fail "worker.sh made no host key"
SSH="ssh -F $RUN/etc/ssh_config"
[ "$($SSH 127.0.0.2 echo ok 2>"$RUN/ssh.err")" = ok ] ||
    fail "ssh with the generated configs: $(cat "$RUN/ssh.err")"
pass "sshd on unprivileged port $PORT with a host key made at start; key-only ssh works"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 2 --host 127.0.0.2:2
    --mca plm_rsh_agent "$SSH" --mca btl self,tcp --mca oob_tcp_if_include lo
    --mca btl_tcp_if_include lo)
# The -x list of k8s/overlays/gpu/mpijob-inference.yaml: each must reach every rank.
XVARS=(ENSFLOW_KAFKA_BOOTSTRAP ENSFLOW_TOPIC_PREFIX ENSFLOW_REDIS_URL ENSFLOW_INSTANCE
    ENSFLOW_LOG_LEVEL ENSFLOW_MODEL_STORE ENSFLOW_BACKEND ENSFLOW_RDKAFKA_SECURITY_PROTOCOL
    ENSFLOW_RDKAFKA_SASL_MECHANISMS ENSFLOW_RDKAFKA_SASL_USERNAME ENSFLOW_RDKAFKA_SASL_PASSWORD
    ENSFLOW_RDKAFKA_SSL_CA_LOCATION ENSFLOW_RDKAFKA_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION
    OPENBLAS_NUM_THREADS)
XARGS=()
for v in "${XVARS[@]}"; do
    export "$v=value-of-$v"
    XARGS+=(-x "$v")
done
"${MPIRUN[@]}" "${XARGS[@]}" sh -c 'echo "rank=$OMPI_COMM_WORLD_RANK" \
    "vars=$(env | grep -c "^[A-Z_]*=value-of-")" "sshd=${SSH_CONNECTION:+yes}"' \
    >"$RUN/env.out" 2>&1 || fail "mpirun over ssh: $(cat "$RUN/env.out")"
for r in 0 1; do
    grep -qx "rank=$r vars=${#XVARS[@]} sshd=yes" "$RUN/env.out" ||
        fail "rank $r: not every -x variable, or not through sshd: $(cat "$RUN/env.out")"
done
pass "mpirun -x: all ${#XVARS[@]} variables reach both ranks, started through sshd"
for v in "${XVARS[@]}"; do unset "$v"; done

# The real entry command against the local stack; the ranks get their settings only via -x.
stack_up --trainers 1 --inference 0
export ENSFLOW_REDIS_URL ENSFLOW_KAFKA_BOOTSTRAP ENSFLOW_INSTANCE=mpissh
export ENSFLOW_MODEL_STORE="$RUN/stack/models"
ENSFLOW_REDIS_URL=$(cat "$RUN/stack/redis.url")
ENSFLOW_KAFKA_BOOTSTRAP=$(cat "$RUN/stack/bootstrap")
"${MPIRUN[@]}" -x ENSFLOW_REDIS_URL -x ENSFLOW_KAFKA_BOOTSTRAP -x ENSFLOW_INSTANCE \
    -x ENSFLOW_MODEL_STORE \
    "$BIN/ensflow-inference-mpi" --run-dir "$RUN/nowhere" >"$RUN/mpi.log" 2>&1 &
STOP_PIDS="$! $STOP_PIDS"
FAIL_LOG="$RUN/mpi.log"
n=0
for _ in $(seq 150); do
    n=$(rcli --scan --pattern 'ens:device:mpissh-r*' | wc -l)
    [ "$n" -ge 2 ] && break
    sleep 0.1
done
[ "$n" -ge 2 ] || fail "ensflow-inference-mpi over ssh registered $n of 2 devices"
pass "ensflow-inference-mpi started over ssh: both ranks' devices registered"
echo "mpi_sshd: all checks passed"
