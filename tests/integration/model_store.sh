#!/usr/bin/env bash
# model_store.sh - models live in the model store, not in Redis: a small CNN study under ASHA
# (promotions resume from the store) leaves model files under <run-dir>/models and no model
# bytes in Redis; once it ends a trainer compacts it (no resume checkpoints, every model
# weights only, each still loading); `study list` shows its size in Redis and on disk;
# `study delete` frees both, and refuses what it should.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-store.XXXXXX)
KEEP_RUN=${KEEP_E2E:-0}
. "$SRC/tests/harness/stack.sh"
trap cleanup EXIT

make_images 7 1200 300
stack_up --trainers 2 --partitions 2
STORE="$RUN/stack/models"

# bad arguments first: each names its problem
out=$(ens study delete 2>&1) && fail "delete without an id succeeded"
echo "$out" | grep -q "give the study id" || fail "delete without an id: $out"
out=$(ens study delete s-nosuch 2>&1) && fail "deleting an unknown study succeeded"
echo "$out" | grep -q "no study s-nosuch" || fail "unknown study: $out"
pass "study delete refuses a missing or unknown id"

STUDY=$(ens study create --dataset "$RUN/data" --scheduler asha --trials 6 --epochs 2 \
        --min-epochs 0.5 --eta 2 --seed 3 \
        --space '{"family":["cnn"],"conv_blocks":[1],"conv_width":[8],"batch_size":[32],"optimizer":["adamw"]}')
[ -n "$STUDY" ] || fail "study create printed no id"
K="ens:{$STUDY}"
for _ in $(seq 1 50); do [ "$(rcli HGET "$K:study" status)" = running ] && break; sleep 0.2; done
out=$(ens study delete "$STUDY" 2>&1) && fail "a running study was deleted"
echo "$out" | grep -q "stop it first" || fail "running study: $out"
pass "a running study is not deleted without --force"
ens study watch "$STUDY" --timeout 240 >/dev/null 2>&1 || fail "study did not complete"
[ "$(rcli SCARD "$K:trials:failed")" -eq 0 ] || fail "trials failed"
promoted=$(rcli ZCARD "$K:rung:0:1")
[ "$promoted" -ge 1 ] || fail "no promotion: nothing resumed from the store"
pass "study complete, $promoted trial(s) resumed from a stored rung"

# no model bytes in Redis: only references
chunks=$(rcli --scan --pattern "$K:model:*:c:*"; rcli --scan --pattern "$K:ckpt:*:c:*")
[ -z "$chunks" ] || fail "model bytes in Redis: $(echo "$chunks" | head -3)"
refs=$(rcli --scan --pattern "$K:model:*:ref" | wc -l)
lib=$(rcli SCARD "$K:library")
files=$(ls "$STORE/$STUDY/model/" | grep -c '\.ensm$' || true)
[ "$refs" -ge "$lib" ] && [ "$lib" -ge 2 ] || fail "references $refs for a library of $lib"
[ "$files" -eq "$refs" ] || fail "$files model files, $refs references"
pass "$files model files on disk, $refs references in Redis, no model bytes there"

# compaction: an idle trainer takes the study off ens:studies:compact
for _ in $(seq 1 60); do
    [ "$(rcli SISMEMBER ens:studies:compact "$STUDY")" = 0 ] && break
    sleep 1
done
[ "$(rcli SISMEMBER ens:studies:compact "$STUDY")" = 0 ] || fail "study never compacted"
[ ! -d "$STORE/$STUDY/ckpt" ] || [ -z "$(ls -A "$STORE/$STUDY/ckpt")" ] ||
    fail "resume checkpoints left: $(ls "$STORE/$STUDY/ckpt")"
[ -z "$(rcli --scan --pattern "$K:ckpt:*")" ] || fail "checkpoint references left"
python3 - "$STORE/$STUDY/model" <<'PY' || fail "a model file keeps optimiser state"
import os, struct, sys, zlib
d = sys.argv[1]
n = 0
for f in sorted(os.listdir(d)):
    if not f.endswith(".ensm"):
        continue
    b = open(os.path.join(d, f), "rb").read()
    assert b[:8] == b"ENSMODL1", f
    length, crc = struct.unpack("<QI", b[8:20])
    body = b[24:]
    assert len(body) == length and zlib.crc32(body) == crc, f"{f}: torn or corrupt"
    assert body[:4] == b"ENSM", f
    nsec = struct.unpack("<I", body[8:12])[0]
    p, tags = 12, []
    for _ in range(nsec):
        tags.append(body[p:p + 4].decode())
        p += 12 + struct.unpack("<Q", body[p + 4:p + 12])[0]
    if "OPTM" in tags or "OPTV" in tags:
        print(f"{f}: sections {tags}")
        sys.exit(1)
    n += 1
print(f"{n} model files, weights only")
PY
pass "compacted: no resume checkpoints, every model weights only"

# the compacted models still load: deploy the front's best ensemble and predict
ens deploy "$STUDY" --timeout 60 >/dev/null 2>&1 || fail "deploy after compaction"
pass "compacted models load and serve"

# study list: sizes in Redis and on disk
list=$(ens study list -o json)
python3 - "$STUDY" "$list" <<'PY' || fail "study list: $list"
import json, sys
rows = {r["study_id"]: r for r in json.loads(sys.argv[2])}
r = rows[sys.argv[1]]
assert r["status"] == "complete" and r["files"] >= 2 and r["disk_bytes"] > 0, r
assert r["redis_keys"] > 0 and r["redis_bytes"] > 0, r
PY
ens study list | grep -q "^$STUDY " || fail "study list (text) misses $STUDY"
pass "study list shows the study with its size in Redis and on disk"

# delete: refused while its ensemble serves, then forced; Redis and disk freed
out=$(ens study delete "$STUDY" 2>&1) && fail "deleted the study whose ensemble is deployed"
echo "$out" | grep -q "deployed" || fail "deployed study: $out"
ens study delete "$STUDY" --force || fail "study delete --force"
[ -z "$(rcli --scan --pattern "$K:*")" ] || fail "keys left: $(rcli --scan --pattern "$K:*" | head)"
[ ! -e "$STORE/$STUDY" ] || fail "files left in $STORE/$STUDY"
[ "$(rcli SISMEMBER ens:studies:settling "$STUDY")" = 0 ] || fail "left in the settling set"
ens study list | grep -q "^$STUDY " && fail "study list still shows $STUDY"
pass "study delete freed Redis and disk"
