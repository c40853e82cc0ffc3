#!/usr/bin/env bash
# onnx_export.sh - `ensflow export --format onnx` checked by others: small models trained by
# ensflow (tests/integration/onnx_fixture.c: an MLP, CNNs with batch norm, residual blocks,
# pools, leaky ReLU and GELU, and a 3-member ensemble) are exported, each file must pass
# python3-onnx's checker and ONNX Runtime (onnxruntime-node) must give ensflow's probabilities
# on the test images within 1e-4. Then the same through a study: models in the model store and
# a front in Redis as the services keep them, exported by id.
# Needs /usr/bin/python3 with onnx (Debian: python3-onnx) and node with onnxruntime-node in
# tests/node_modules (scripts/setup.sh test installs both); skips (77) without them.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
FIXTURE=$BIN/../tests/onnx_fixture
TOL=1e-4
fail() { echo "FAIL $*"; exit 1; }
pass() { echo "PASS $*"; }

if ! /usr/bin/python3 -c 'import onnx' 2>/dev/null; then
    echo "SKIP: /usr/bin/python3 cannot import onnx (Debian package python3-onnx)"
    exit 77
fi
if ! command -v node >/dev/null ||
    ! (cd "$SRC/tests" && node -e 'require("onnxruntime-node")') 2>/dev/null; then
    echo "SKIP: node with onnxruntime-node not found (npm install --ignore-scripts --prefix" \
         "tests onnxruntime-node; scripts/setup.sh test does it)"
    exit 77
fi
[ -x "$FIXTURE" ] || fail "$FIXTURE not built"

WORK=$(mktemp -d /tmp/ensflow-onnx.XXXXXX)
cleanup() { if [ "${KEEP_E2E:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

"$FIXTURE" "$WORK" || fail "onnx_fixture"
D=$((3 * 12 * 12))
K=4

# check NAME.onnx EXPECTED.f32: the checker, then ONNX Runtime against ensflow
check() {
    local name=$1 onnx=$2 want=$3 out
    /usr/bin/python3 -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' \
        "$onnx" || fail "$name: onnx.checker refuses $onnx"
    out=$(node "$SRC/tests/integration/onnx_run.js" "$onnx" "$WORK/x.f32" "$want" $D $K $TOL) ||
        fail "$name: ONNX Runtime differs from ensflow by more than $TOL: $out"
    pass "$name: checker ok, ONNX Runtime vs ensflow $out"
}

# every model through the command, as a model file
for name in $(cat "$WORK/models.txt"); do
    "$BIN/ensflow" export --file "$WORK/$name.ensm" --format onnx -o "$WORK/$name.onnx" \
        >/dev/null || fail "ensflow export --file $name.ensm"
    check "$name" "$WORK/$name.onnx" "$WORK/$name.probs.f32"
done
# the 3-member ensemble as one graph (written by ens_onnx_export in the fixture)
check "ensemble of 3 (weights 3:2:1)" "$WORK/ensemble.onnx" "$WORK/ensemble.probs.f32"

# clear errors
"$BIN/ensflow" export --file "$WORK/mlp.ensm" --format tflite -o "$WORK/x.tflite" 2>"$WORK/err" &&
    fail "an unknown format was accepted"
grep -q "unknown format 'tflite'" "$WORK/err" || fail "unknown format: $(cat "$WORK/err")"
"$BIN/ensflow" export --file "$WORK/mlp.ensm" --format onnx 2>"$WORK/err" &&
    fail "no -o was accepted"
grep -q "no output file" "$WORK/err" || fail "missing -o: $(cat "$WORK/err")"
"$BIN/ensflow" export --file "$WORK/models.txt" -o "$WORK/bad.onnx" 2>"$WORK/err" &&
    fail "a file that is no model was exported"
grep -q "is not a model" "$WORK/err" || fail "not a model: $(cat "$WORK/err")"
[ ! -e "$WORK/bad.onnx" ] || fail "a failed export left $WORK/bad.onnx"
pass "unknown format, missing -o and a file that is no model are refused"

# a study's model and ensemble by id (Redis from the test harness)
URL_FILE=${ENSFLOW_TEST_DIR:-}/redis.url
if [ ! -s "$URL_FILE" ]; then
    echo "note: no test Redis ($URL_FILE); the study part is left out"
    exit 0
fi
STUDY=onnx-$$
"$FIXTURE" --store "$(cat "$URL_FILE")" "$WORK/store" "$STUDY" "$WORK" ||
    fail "onnx_fixture --store"
ls "$WORK/store/$STUDY/model/"*.ensm >/dev/null 2>&1 || fail "no model files in the store"
ens() {
    "$BIN/ensflow" export "$@" --redis-url "$(cat "$URL_FILE")" --model-store "$WORK/store" \
        --run-dir "$WORK/run"
}
ens cnn_bn_res --study "$STUDY" --format onnx -o "$WORK/study_model.onnx" >/dev/null ||
    fail "export of model cnn_bn_res of study $STUDY"
check "study model cnn_bn_res" "$WORK/study_model.onnx" "$WORK/cnn_bn_res.probs.f32"
ens e-onnx --study "$STUDY" --format onnx -o "$WORK/study_ensemble.onnx" >/dev/null ||
    fail "export of ensemble e-onnx of study $STUDY"
check "study ensemble e-onnx (the front's weights)" "$WORK/study_ensemble.onnx" \
    "$WORK/ensemble.probs.f32"
ens nosuch --study "$STUDY" -o "$WORK/nosuch.onnx" 2>"$WORK/err" && fail "an unknown id was exported"
grep -q "has no model or ensemble nosuch" "$WORK/err" || fail "unknown id: $(cat "$WORK/err")"
pass "unknown model or ensemble id refused"
