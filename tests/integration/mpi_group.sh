#!/usr/bin/env bash
# mpi_group.sh - an inference group over two MPI ranks (mpirun -np 2) serves a deployed
# ensemble: every request answered once, with the same probabilities as one process computing
# the same plan (within 1e-5), and each rank ran its share of the members, at the batch size
# --member-batch gave the group (on every rank, not only rank 0).
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
if [ ! -x "$BIN/ensflow-inference-mpi" ] || ! command -v mpirun >/dev/null; then
    echo "SKIP: ensflow-inference-mpi or mpirun not built/installed (Debian: libopenmpi-dev openmpi-bin)"
    exit 77
fi
RUN=$(mktemp -d /tmp/ensflow-mpi.XXXXXX)
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
. "$SRC/tests/harness/stack.sh"
FAIL_LOG="$RUN/mpi.log"
trap cleanup EXIT

make_blobs 99 4 16 1.2 2400 400

# no single-device group: the MPI group is the only one serving
stack_up --trainers 2 --inference 0 --partitions 2
study_done --trials 4 --epochs 1 --top-k 4 --seed 3

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm_rsh_agent=false
mpirun --allow-run-as-root --oversubscribe -np 2 "$BIN/ensflow-inference-mpi" \
    --run-dir "$RUN/stack" --instance mpi-test --member-batch 16 > "$RUN/mpi.log" 2>&1 &
STOP_PIDS="$STOP_PIDS $!"
ens deploy "$STUDY" --timeout 90 > "$RUN/plan.txt" || fail "deploy to the MPI group"
grep -q 'rank=0/2 .*member_batch=16' "$RUN/mpi.log" || fail "rank 0 did not load the plan at batch 16"
grep -q 'rank=1/2 .*member_batch=16' "$RUN/mpi.log" || fail "rank 1 did not load the plan at batch 16"
members=$(grep -c '^  ' "$RUN/plan.txt" || true)
pass "plan loaded on both ranks ($members plan rows)"

ens predict --input "$RUN/data.csv" --output "$RUN/online.bin" > "$RUN/predict.json" \
    || fail "predict through the MPI group: $(cat "$RUN/predict.json")"
grep -q '"answered": 400' "$RUN/predict.json" || fail "answers: $(cat "$RUN/predict.json")"
grep -q '"duplicates": 0' "$RUN/predict.json" || fail "duplicates: $(cat "$RUN/predict.json")"
pass "400 requests answered once each by the MPI group"
ens predict --input "$RUN/data.csv" --offline --output "$RUN/offline.bin" || fail "offline"
same_probs "$RUN/online.bin" "$RUN/offline.bin" $((400 * 4)) \
    || fail "MPI and single-process probabilities differ"
pass "2-rank MPI group gives the single-process probabilities (within 1e-5)"
echo "mpi_group: all checks passed"
