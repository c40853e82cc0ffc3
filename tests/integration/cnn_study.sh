#!/usr/bin/env bash
# cnn_study.sh - a tiny CNN study through the services: a generated IDX data set of 8x8
# images (3 classes), family cnn, ASHA with rungs of 0.5 and 1 epoch (eta 2), so a CNN trains
# a fractional epoch, is checkpointed and resumes on promotion. Every trial must report, the
# configurations must be CNNs, the models must learn (val accuracy well above chance).
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-cnn.XXXXXX)
KEEP_RUN=${KEEP_E2E:-0}
. "$SRC/tests/harness/stack.sh"
trap cleanup EXIT

make_images 5 1500 300
stack_up --trainers 2 --partitions 2

STUDY=$(ens study create --dataset "$RUN/data" --scheduler asha --trials 4 --epochs 1 \
        --min-epochs 0.5 --eta 2 --seed 5 \
        --space '{"family":["cnn"],"conv_blocks":[1,2],"conv_width":[8],"batch_size":[32]}')
[ -n "$STUDY" ] || fail "study create printed no id"
K="ens:{$STUDY}"
ens study watch "$STUDY" --timeout 120 >/dev/null 2>&1 || fail "study did not complete"
done_n=$(rcli SCARD "$K:trials:done")
failed_n=$(rcli SCARD "$K:trials:failed")
[ "$failed_n" -eq 0 ] || fail "$failed_n trials failed: $(rcli HGET "$K:trial:t-00000" error)"
[ "$done_n" -eq 4 ] || fail "trials done: $done_n of 4"
pass "4 CNN trials reported"
for t in $(rcli SMEMBERS "$K:trials:done"); do
    rcli HGET "$K:trial:$t" config | grep -q '"family":"cnn"' || fail "$t is not a CNN"
done
pass "every configuration is a CNN"
promoted=$(rcli ZCARD "$K:rung:0:1")
[ "$promoted" -ge 1 ] || fail "no trial promoted to the 1-epoch rung"
pass "$promoted trial(s) resumed from 0.5 to 1 epoch"
best=$(rcli ZREVRANGE "$K:rung:0:1" 0 0 WITHSCORES | tail -n 1)
python3 -c "import sys; sys.exit(0 if float('$best') > 0.6 else 1)" || fail "best val acc $best"
pass "best val acc $best (chance 0.33)"
echo "cnn_study: all checks passed"
