#!/usr/bin/env bash
# store_kill.sh - SIGKILL a trainer while it writes a model file: the moment its temporary
# file appears in the model store (inotify), the process named in that file's name is killed.
# The half-written file must never be taken for a model: the job is issued again, the study
# completes with every trial reported once, every model the library lists was evaluated and
# is whole on disk, a deploy loads and serves them, and the study's compaction sweeps the
# dead writer's temporary file.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-faults.XXXXXX)
. "$SRC/tests/faults/lib.sh"
trap cleanup EXIT
TRIALS=6

make_data 3000 300
# a dead trainer's job comes back within seconds, not the default 30; compaction takes a
# dead writer's file once it is 5 s old, not 300
export ENSFLOW_LEASE_MS=3000 ENSFLOW_REISSUE_MS=3000 ENSFLOW_COMPACT_GRACE_S=5
stack_up --trainers 2 --partitions 2
STORE="$RUN/stack/models"
# wide layers: model files of a few MB, so the kill lands inside the write
STUDY=$(ens study create --dataset "$RUN/data.csv" --trials $TRIALS --epochs 2 --top-k 3 \
        --seed 5 --space '{"family":["mlp"],"layers":[2],"width":[768],"lr":[0.05],"batch_size":[64]}')
[ -n "$STUDY" ] || fail "study create printed no id"
mkdir -p "$STORE/$STUDY/ckpt" "$STORE/$STUDY/model"

/usr/bin/env python3 - "$STORE/$STUDY" > "$RUN/kill.txt" <<'PY' || fail "no write to interrupt: $(cat "$RUN/kill.txt")"
import ctypes, os, signal, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
IN_CREATE = 0x100
fd = libc.inotify_init()
assert fd >= 0
for sub in ("ckpt", "model"):
    assert libc.inotify_add_watch(fd, os.path.join(sys.argv[1], sub).encode(), IN_CREATE) >= 0
deadline = time.time() + 120
os.set_blocking(fd, False)
while time.time() < deadline:
    try:
        buf = os.read(fd, 65536)
    except BlockingIOError:
        time.sleep(0.0005)
        continue
    off = 0
    while off < len(buf):
        wd, mask, cookie, length = struct.unpack_from("iIII", buf, off)
        name = buf[off + 16:off + 16 + length].rstrip(b"\0").decode()
        off += 16 + length
        if name.startswith(".tmp."):  # .tmp.<id>.<writer pid>.<nanoseconds>
            pid = int(name.split(".")[-2])
            os.kill(pid, signal.SIGKILL)
            print(pid, name)
            sys.exit(0)
sys.exit(1)
PY
read -r KILLED TMPNAME < "$RUN/kill.txt"
TMPFILE=$(ls "$STORE/$STUDY"/*/"$TMPNAME" 2>/dev/null || true)
[ -n "$TMPFILE" ] || fail "the killed writer's file $TMPNAME was not left behind (kill too late?)"
SIZE=$(stat -c %s "$TMPFILE")
pass "trainer pid $KILLED killed while writing $TMPNAME ($SIZE bytes on disk)"

watch_study "$STUDY" 240 || fail "study did not complete after the kill"
check_trials "$STUDY" $TRIALS
[ "$(rcli SCARD "ens:{$STUDY}:trials:failed")" -eq 0 ] || fail "a trial failed"

# every model the library lists: evaluated, referenced, and whole on disk
for m in $(rcli SMEMBERS "ens:{$STUDY}:library"); do
    [ "$(rcli EXISTS "ens:{$STUDY}:eval:$m")" = 1 ] || fail "$m listed but not evaluated"
    [ "$(rcli EXISTS "ens:{$STUDY}:model:$m:ref")" = 1 ] || fail "$m has no store reference"
    python3 - "$STORE/$STUDY/model/$m.ensm" <<'PY' || fail "$m: file torn or corrupt"
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
length, crc = struct.unpack("<QI", b[8:20])
assert b[:8] == b"ENSMODL1" and len(b) == 24 + length and zlib.crc32(b[24:]) == crc
PY
done
pass "every library model was evaluated and is whole on disk"
wait_front "$STUDY"
ens deploy "$STUDY" --timeout 90 > "$RUN/plan.txt" || fail "deploy after the kill"
ens predict --input "$RUN/data.csv" --limit 50 > "$RUN/predict.json" || fail "predict"
grep -q '"answered": 50' "$RUN/predict.json" || fail "predict: $(cat "$RUN/predict.json")"
pass "the deployed ensemble loads and answers"

for _ in $(seq 60); do
    [ "$(rcli SISMEMBER ens:studies:compact "$STUDY")" = 0 ] && break
    sleep 1
done
[ ! -e "$TMPFILE" ] || fail "the dead writer's temporary file was not swept"
grep -h "model files compacted" "$RUN"/stack/logs/trainer*.log | grep -q "study=$STUDY" ||
    fail "no compaction logged"
pass "compaction swept the dead writer's file: $(grep -h "model files compacted" \
    "$RUN"/stack/logs/trainer*.log | grep -o 'temp_deleted=[0-9]*' | head -1)"
echo "store_kill: all checks passed"
