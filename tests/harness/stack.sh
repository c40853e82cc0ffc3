# stack.sh - what the shell tests share: pass/fail lines, a generated data set, the local stack
# (`ensflow up` in a run directory of the test's own) and its Redis. Sourced; expects BIN (the
# binaries) and RUN (a fresh directory) to be set. KEEP_RUN=1 keeps RUN for a post-mortem.
# A test may set FAIL_LOG to a log whose tail `fail` shows, and add pids to STOP_PIDS.
STOP_PIDS=${STOP_PIDS:-}
fail() {
    echo "FAIL $*"
    if [ -n "${FAIL_LOG:-}" ]; then tail -n 20 "$FAIL_LOG" 2>/dev/null || true; fi
    exit 1
}
pass() { echo "PASS $*"; }
ens() { "$BIN/ensflow" "$@" --run-dir "$RUN/stack"; }
cleanup() {
    local pid
    for pid in $STOP_PIDS; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    "$BIN/ensflow" down --run-dir "$RUN/stack" >/dev/null 2>&1 || true
    if [ "${KEEP_RUN:-0}" = 1 ]; then echo "kept $RUN"; else rm -rf "$RUN"; fi
}

# make_blobs SEED CLASSES FEATURES SPREAD N_TRAIN N_TEST: Gaussian blobs around random centres,
# label first, written to $RUN/data.csv and $RUN/data.test.csv (the CSV data set convention).
make_blobs() {
    python3 - "$RUN" "$@" <<'PY'
import random, sys
run, seed, classes, features, spread, n_train, n_test = sys.argv[1:8]
classes, features, spread = int(classes), int(features), float(spread)
rng = random.Random(int(seed))
centres = [[rng.gauss(0, 1.0) for _ in range(features)] for _ in range(classes)]
for name, n in (("data.csv", int(n_train)), ("data.test.csv", int(n_test))):
    with open(run + "/" + name, "w") as f:
        for i in range(n):
            c = i % classes
            f.write(",".join([str(c)] + ["%.5f" % (m + rng.gauss(0, spread)) for m in centres[c]]) + "\n")
PY
}

# make_images SEED N_TRAIN N_TEST: an IDX data set in $RUN/data of 8x8 images in 3 classes (class
# c brightens rows 2c..2c+2 over uniform noise): small enough for CNN studies in seconds.
make_images() {
    mkdir -p "$RUN/data"
    python3 - "$RUN/data" "$@" <<'PY'
import random, struct, sys
out, seed, n_train, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
def write(prefix, n):
    imgs, labels = bytearray(), bytearray()
    for i in range(n):
        c = i % 3
        for p in range(64):
            row = p // 8
            v = rng.random() * 0.35 + (0.65 if 2 * c <= row < 2 * c + 3 else 0)
            imgs.append(min(255, int(v * 255)))
        labels.append(c)
    with open(f"{out}/{prefix}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, 8, 8) + imgs)
    with open(f"{out}/{prefix}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels)
write("train", n_train)
write("t10k", n_test)
PY
}

# stack_up [ensflow up options]: the local stack, and REDIS_PORT for rcli.
stack_up() {
    ens up "$@" || fail "ensflow up"
    REDIS_PORT=$(sed -E 's#.*:([0-9]+)/.*#\1#' "$RUN/stack/redis.url")
}
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# study_done [study create options]: a study of $RUN/data.csv, created and watched to its end
# (300 s at most); its id in STUDY.
study_done() {
    STUDY=$(ens study create --dataset "$RUN/data.csv" "$@") || fail "study create"
    ens study watch "$STUDY" --timeout 300 >/dev/null 2>&1 || fail "study did not complete"
}

# same_probs A B N: the float32 probability files A and B both hold N values and differ by
# at most 1e-5 anywhere (prints the largest difference); non-zero otherwise.
same_probs() {
    python3 - "$1" "$2" "$3" <<'PY'
import array, sys
a, b = array.array("f"), array.array("f")
a.frombytes(open(sys.argv[1], "rb").read())
b.frombytes(open(sys.argv[2], "rb").read())
assert len(a) == len(b) == int(sys.argv[3]), (len(a), len(b))
worst = max(abs(x - y) for x, y in zip(a, b))
print("largest difference %.3g" % worst)
assert worst <= 1e-5, worst
PY
}
