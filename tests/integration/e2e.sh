#!/usr/bin/env bash
# e2e.sh - the whole workflow on the embedded stack: a tiny study from a generated data set,
# every trial reported and evaluated, a front, a plan, every request answered exactly once
# with the probabilities of the same ensemble computed offline, status, front, plan and predict
# as JSON (-o json), then the Python client (interoperability and bad input) against the same
# stack.
set -euo pipefail
BIN=${ENSFLOW_BIN:?set by ctest}
SRC=${ENSFLOW_SOURCE_DIR:?set by ctest}
RUN=$(mktemp -d /tmp/ensflow-e2e.XXXXXX)
. "$SRC/tests/harness/stack.sh"
trap cleanup EXIT

# A generated 3-class problem: 24 features, Gaussian blobs, 3000 training and 600 test rows.
make_blobs 1234 3 24 1.3 3000 600
head -n 1 "$RUN/data.test.csv" > "$RUN/row.csv"

stack_up --trainers 2 --partitions 2

STUDY=$(ens study create --dataset "$RUN/data.csv" --trials 4 --epochs 2 --top-k 3 --seed 7)
[ -n "$STUDY" ] || fail "study create printed no id"
ens study watch "$STUDY" --timeout 300 || fail "study did not complete"
done_n=$(rcli SCARD "ens:{$STUDY}:trials:done")
failed_n=$(rcli SCARD "ens:{$STUDY}:trials:failed")
[ $((done_n + failed_n)) -eq 4 ] || fail "trials reported: $done_n done + $failed_n failed, expected 4"
[ "$done_n" -ge 1 ] || fail "no trial succeeded"
pass "every trial reported ($done_n done, $failed_n failed)"
lib_n=$(rcli SCARD "ens:{$STUDY}:library")
[ "$lib_n" -eq "$done_n" ] || fail "$lib_n models evaluated, $done_n trained"
pass "every trained model evaluated ($lib_n)"

# -o json: the facts of the text, parsed; the default stays text
ens study status "$STUDY" > "$RUN/status.txt" || fail "study status"
grep -q "^study: *$STUDY\$" "$RUN/status.txt" || fail "status text: $(cat "$RUN/status.txt")"
ens study status "$STUDY" -o json > "$RUN/status.json" || fail "study status -o json"
/usr/bin/python3 - "$RUN/status.json" "$STUDY" "$done_n" "$failed_n" "$lib_n" <<'PY' \
    || fail "status -o json: $(cat "$RUN/status.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["study_id"] == sys.argv[2] and s["status"] == "complete", s
assert s["trials_ok"] == int(sys.argv[3]) and s["trials_failed"] == int(sys.argv[4]), s
assert s["models_evaluated"] == int(sys.argv[5]) and s["trials_planned"] == 4, s
assert 0 < s["best_val_accuracy"] <= 1 and s["epochs_per_trial"] == 2, s
PY
pass "study status -o json: $(cat "$RUN/status.json")"

ens front "$STUDY" > "$RUN/front.txt" || fail "ensflow front"
grep -Eq '^(single|topk)[0-9]+-n' "$RUN/front.txt" || fail "front has no ensemble: $(cat "$RUN/front.txt")"
pass "front: $(head -n 1 "$RUN/front.txt")"
ens front "$STUDY" --output json > "$RUN/front.json" || fail "front --output json"
/usr/bin/python3 - "$RUN/front.json" "$STUDY" "$lib_n" <<'PY' || fail "front json: $(cat "$RUN/front.json")"
import json, os, sys
f = json.load(open(sys.argv[1]))
assert f["study_id"] == sys.argv[2] and f["library_models"] == int(sys.argv[3]), f
assert f["n_ensembles"] == len(f["ensembles"]) >= 1 and not f["partial"], f
ids = {e["ensemble_id"] for e in f["ensembles"]}
assert f["deploy_default"]["ensemble_id"] in ids, f
for e in f["ensembles"]:
    assert e["n_members"] == len(e["members"]) >= 1, e
    assert abs(sum(m["weight"] for m in e["members"]) - 1) < 1e-6, e
assert os.path.exists(f["report"]), f
PY
pass "front --output json: $(head -c 160 "$RUN/front.json") ..."

# an impossible constraint is refused with the cheapest ensemble named
if ens deploy "$STUDY" --max-cost 0.0000001 2> "$RUN/deploy.err"; then fail "impossible deploy accepted"; fi
grep -q "cheapest" "$RUN/deploy.err" || fail "impossible deploy: $(cat "$RUN/deploy.err")"
pass "impossible constraint refused: $(tail -n 1 "$RUN/deploy.err")"

ens deploy "$STUDY" > "$RUN/plan.txt" || fail "ensflow deploy"
grep -q "^plan plan-v" "$RUN/plan.txt" || fail "no plan: $(cat "$RUN/plan.txt")"
pass "plan: $(head -n 1 "$RUN/plan.txt")"
ens plan "$STUDY" -o json --explain > "$RUN/plan.json" || fail "plan -o json"
/usr/bin/python3 - "$RUN/plan.json" "$STUDY" <<'PY' || fail "plan json: $(cat "$RUN/plan.json")"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["study_id"] == sys.argv[2] and p["plan_id"].startswith("plan-v"), p
assert p["members"] and all(m["instances"] >= 1 and m["batch_size"] >= 1 for m in p["members"]), p
assert {d["device_id"] for d in p["devices"]} == {m["device"] for m in p["members"]}, p
assert all(d["registered"] for d in p["devices"]), p
PY
pass "plan -o json --explain: $(cat "$RUN/plan.json")"

# -o json with --probs; the offline run below keeps the older --output FILE
ens predict --input "$RUN/data.csv" -o json --probs "$RUN/online.bin" > "$RUN/predict.json" \
    || fail "ensflow predict"
python3 - "$RUN/predict.json" <<'PY' || fail "predict: $(cat "$RUN/predict.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["requests"] == 600 and s["answered"] == 600, s
assert s["duplicates"] == 0 and s["errors"] == 0, s
assert s["accuracy"] > 0.6, s
assert sum(v["answered"] for v in s["versions"]) == 600, s
PY
pass "600 requests, each answered exactly once: $(cat "$RUN/predict.json")"

ens predict --input "$RUN/data.csv" --offline --output "$RUN/offline.bin" \
    || fail "offline predict"
same_probs "$RUN/online.bin" "$RUN/offline.bin" $((600 * 3)) \
    || fail "online and offline probabilities differ"
pass "served probabilities equal the offline computation of the plan (within 1e-5)"

if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import avro, confluent_kafka" 2>/dev/null; then
    ENSFLOW_SOURCE_DIR="$SRC" /usr/bin/python3 "$SRC/tests/interop/kafka_client.py" \
        "$(cat "$RUN/stack/bootstrap")" "$RUN/row.csv" || fail "python client"
    # the inference group kept serving after the bad input
    ens predict --input "$RUN/data.csv" --limit 50 > "$RUN/after.json" || fail "predict after bad input"
    grep -q '"answered": 50' "$RUN/after.json" || fail "after bad input: $(cat "$RUN/after.json")"
    pass "still serving after bad input"
else
    fail "python3-avro / python3-confluent-kafka missing (scripts/setup.sh installs them)"
fi
echo "e2e: all checks passed"
