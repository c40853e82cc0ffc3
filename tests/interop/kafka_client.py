#!/usr/bin/python3
"""kafka_client.py - an ensflow client written only with Debian's python3-avro and
python3-confluent-kafka (through ensavro.py, which shares no code with the C side).

Against a running stack with a plan in force it checks:
  interop:   an InferenceRequest encoded here from schemas/InferenceRequest.avsc is answered,
             and the InferenceResponse decodes with sane probabilities;
  bad input: random bytes, a wrong marker and an unknown fingerprint each end as a DeadLetter
             record (with the reason and the original bytes), a request of the wrong shape gets
             an ERROR response, and a valid request sent after all of them is still answered.

usage: kafka_client.py BOOTSTRAP FEATURE_CSV_ROW_FILE [TOPIC_PREFIX]
Prints one PASS/FAIL line per check and exits 1 if any failed.
"""

import os
import random
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ensavro  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

failures = 0
passes = 0


def check(name, ok, detail=""):
    global failures, passes
    passes += 0 if not ok else 1
    print(("PASS " if ok else "FAIL ") + name + ((": " + detail) if detail else ""), flush=True)
    if not ok:
        failures += 1


def request(request_id, values):
    datum = ensavro.new_header()
    datum.update({"request_id": request_id, "shape": [len(values)], "data": values,
                  "deadline_ms": None})
    return ensavro.encode("InferenceRequest", datum)


def main():
    bootstrap, row_file = sys.argv[1], sys.argv[2]
    prefix = sys.argv[3] if len(sys.argv) > 3 else "ensflow."
    with open(row_file) as f:
        features = [float(v) for v in f.readline().strip().split(",")[1:]]
    run = uuid.uuid4().hex[:8]

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-client-" + run,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5})
    consumer.subscribe([prefix + "inference.responses", prefix + "dlq"])
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(0.2)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    topic = prefix + "inference.requests"
    body = ensavro.encode("InferenceRequest", dict(ensavro.new_header(), request_id="x",
                                                   shape=[1], data=[0.0], deadline_ms=None))[10:]
    rng = random.Random(7)
    bad = {
        "random bytes": bytes(rng.getrandbits(8) for _ in range(64)),
        "wrong marker": b"\xc3\x02" + request("py-%s-marker" % run, features)[2:],
        "unknown fingerprint": b"\xc3\x01" + bytes(8) + body,
    }
    ids = {"ok1": "py-%s-ok1" % run, "shape": "py-%s-shape" % run, "ok2": "py-%s-ok2" % run}
    headers = [("event-type", b"InferenceRequest")]
    producer.produce(topic, request(ids["ok1"], features), key=ids["ok1"], headers=headers)
    producer.produce(topic, request(ids["shape"], features[:5]), key=ids["shape"],
                     headers=headers)
    for i, payload in enumerate(bad.values()):
        producer.produce(topic, payload, key="py-%s-bad%d" % (run, i))
    producer.flush(10)
    time.sleep(0.5)  # the valid request after the bad ones lands in a later batch
    producer.produce(topic, request(ids["ok2"], features), key=ids["ok2"], headers=headers)
    producer.flush(10)

    responses, dead = {}, {}
    deadline = time.time() + 60
    wanted_dead = set(bad.values())
    while time.time() < deadline and (len(responses) < 3 or len(dead) < len(bad)):
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        try:
            name, datum = ensavro.decode(msg.value())
        except ValueError:
            continue
        if name == "InferenceResponse" and datum["request_id"] in ids.values():
            responses[datum["request_id"]] = datum
        elif name == "DeadLetter" and datum["payload"] in wanted_dead:
            dead[datum["payload"]] = datum
    consumer.close()

    for key in ("ok1", "ok2"):
        r = responses.get(ids[key])
        ok = r is not None and r["status"] == "OK"
        probs = r["probabilities"] if ok else []
        ok = ok and len(probs) >= 2 and abs(sum(probs) - 1.0) < 1e-4
        ok = ok and r["predicted_class"] == max(range(len(probs)), key=lambda c: probs[c])
        ok = ok and len(r["model_versions"]) >= 1 and r["ensemble_id"] != ""
        check("interop: %s answered" % key, ok, str(r and {k: r[k] for k in (
            "status", "predicted_class", "ensemble_id", "plan_version")}))
    r = responses.get(ids["shape"])
    check("bad input: wrong shape gets an ERROR response",
          r is not None and r["status"] == "ERROR" and "shape" in (r["error"] or ""),
          str(r and r["error"]))
    reasons = {"random bytes": None, "wrong marker": "marker",
               "unknown fingerprint": "fingerprint"}
    for what, payload in bad.items():
        d = dead.get(payload)
        ok = d is not None and d["source_topic"] == topic and d["service"] == "inference"
        word = reasons[what]
        ok = ok and (word is None or word in d["reason"]) and d["reason"] != ""
        check("bad input: %s dead-lettered with a reason" % what, ok, str(d and d["reason"]))
    print("%d passed, %d failed" % (passes, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
