#!/usr/bin/env bash
# demo.sh - `ensflow demo` end to end on a small image set (8x8, 3 classes) with a 45 s budget:
# the stack comes up, a study runs to its budget, the pick is deployed, the test set streams
# through Kafka, and the JSON summary holds what it promises: every request answered, the
# ensemble and the best single model (read from the model store) scored on test, well above
# chance, within the budget's time.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-demo.XXXXXX)
. "$SRC/tests/harness/stack.sh"
trap cleanup EXIT

make_images 9 1500 300
ens demo --dataset "$RUN/data" --budget-minutes 0.75 --json "$RUN/demo.json" \
    > "$RUN/demo.out" 2> "$RUN/demo.err" || { FAIL_LOG="$RUN/demo.err" fail "ensflow demo"; }
python3 - "$RUN/demo.json" <<'PY' || fail "demo summary: $(cat "$RUN/demo.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["requests"] == 300 and d["answered"] == 300 and d["errors"] == 0, d
assert d["test_accuracy_ensemble"] > 0.6, d       # chance is 0.33
assert d["test_accuracy_best_single"] > 0.6, d    # the single model, loaded from the store
assert d["members"] >= 1 and d["models_evaluated"] >= d["members"], d
assert d["seconds"] < 150, d
print("ensemble %.4f, best single %.4f, %d models, %.0f s" % (
    d["test_accuracy_ensemble"], d["test_accuracy_best_single"], d["models_evaluated"],
    d["seconds"]))
PY
pass "demo: $(python3 -c "import json; d=json.load(open('$RUN/demo.json')); print(d['test_accuracy_ensemble'], d['test_accuracy_best_single'])")"
