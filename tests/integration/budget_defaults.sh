#!/usr/bin/env bash
# budget_defaults.sh - budget-first studies with the defaults on data sets other than
# Fashion-MNIST: a directory of MNIST-style IDX images (a CNN space by default) and a CSV
# table (the MLP space). Each study is created with only --dataset and --budget-minutes; it
# runs ASHA until the budget, ends by itself near it, and leaves a library that learned.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-budget.XXXXXX)
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
. "$SRC/tests/harness/stack.sh"
trap cleanup EXIT

# digits-like images: 3 classes of 12x12, a bright bar whose place and direction tell the class
mkdir -p "$RUN/idx"
python3 - "$RUN/idx" <<'PY'
import random, struct, sys
d = sys.argv[1]
rng = random.Random(5)
def write(prefix, n):
    imgs, labs = bytearray(), bytearray()
    for i in range(n):
        c = i % 3
        px = [rng.randrange(0, 60) for _ in range(144)]
        o = rng.randrange(2, 9)
        for k in range(2, 10):
            r, col = [(o, k), (k, o), (k, k)][c]
            px[r * 12 + col] = min(255, 180 + rng.randrange(0, 70))
        imgs += bytes(px)
        labs.append(c)
    open(f"{d}/{prefix}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 2051, n, 12, 12) + imgs)
    open(f"{d}/{prefix}-labels-idx1-ubyte", "wb").write(struct.pack(">II", 2049, n) + labs)
write("train", 3000)
write("t10k", 300)
PY
make_blobs 17 3 16 1.5 3000 300
stack_up --trainers 2 --partitions 2

for data in idx csv; do
    if [ $data = idx ]; then D="$RUN/idx"; family=cnn; else D="$RUN/data.csv"; family=""; fi
    t0=$SECONDS
    S=$(ens study create --dataset "$D" --budget-minutes 0.75) || fail "$data: study create"
    K="ens:{$S}"
    ens study watch "$S" --timeout 150 >/dev/null 2>"$RUN/watch-$data.err" \
        || { tail -5 "$RUN/watch-$data.err"; fail "$data: study did not complete"; }
    took=$((SECONDS - t0))
    [ "$(rcli HGET "$K:study" scheduler)" = asha ] || fail "$data: scheduler $(rcli HGET "$K:study" scheduler)"
    [ "$(rcli HGET "$K:study" n_trials)" -ge 1000 ] || fail "$data: a trial count was set"
    # No job is issued in the last 5 s (kept for the last evaluations), nor one that cannot
    # end before them, so a 45 s study ends at about 40 s, earlier when an epoch is slow (the
    # sanitizer build); whole seconds make 40 read as 39. It must not end at a trial count nor
    # run far past its budget.
    [ "$took" -ge 30 ] && [ "$took" -le 120 ] || fail "$data: ended after ${took}s of a 45 s budget"
    cfg=$(rcli HGET "$K:trial:t-00000" config)
    if [ -n "$family" ]; then
        echo "$cfg" | grep -q '"family":"cnn"' || fail "$data: not a CNN: $cfg"
    else
        echo "$cfg" | grep -q '"hidden"' || fail "$data: not an MLP: $cfg"
    fi
    lib=$(rcli SCARD "$K:library")
    [ "$lib" -ge 2 ] || fail "$data: library of $lib"
    best=$(rcli ZREVRANGE "$K:rung:0:0" 0 0 WITHSCORES | tail -1)
    awk -v b="$best" 'BEGIN{exit !(b >= 0.8)}' || fail "$data: best validation accuracy $best"
    pass "$data: ${family:-mlp} study of ${took}s for a 45 s budget, library $lib, best val $best"
done
