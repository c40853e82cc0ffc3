#!/usr/bin/python3
"""hostile.py - hostile input against a running stack with a plan in force (24 features).

Each kind of bad message, sent ROUNDS times, must give a DeadLetter record (with a reason) or
an ERROR response, the inference process must stay the same process, its resident memory must
stay bounded, and a valid request sent afterwards must still be answered:
  oversized message (> max-message-bytes, 1 MiB)         -> DLQ "exceeds max-message-bytes"
  huge declared dimensions (shape 8 x 2^31-1)            -> ERROR "shape"
  array length declared beyond the body (2^40 floats)    -> DLQ
  NaN, +Inf, -Inf                                        -> ERROR
  3e38 (finite; overflows some members, not others)      -> ERROR, or OK with finite
                                                            probabilities that sum to 1
  unknown enum symbol (TrialResult.status index 5)       -> DLQ (proposer and evaluator)
  truncated body                                         -> DLQ

usage: hostile.py BOOTSTRAP INFERENCE_PID N_FEATURES [TOPIC_PREFIX]
Uses only Debian's python3-avro and python3-confluent-kafka, through tests/interop/ensavro.py.
"""

import math
import os
import struct
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
import ensavro  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

ROUNDS = 5
failures = 0


def check(name, ok, detail=""):
    global failures
    print(("PASS " if ok else "FAIL ") + name + ((": " + detail) if detail else ""), flush=True)
    failures += 0 if ok else 1


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def zigzag(v):
    u = (v << 1) ^ (v >> 63)
    out = bytearray()
    while True:
        b = u & 0x7F
        u >>= 7
        out.append(b | (0x80 if u else 0))
        if not u:
            return bytes(out)


def avro_str(s):
    b = s.encode()
    return zigzag(len(b)) + b


def request(rid, data, shape=None):
    datum = dict(ensavro.new_header(), request_id=rid, shape=shape or [len(data)], data=data,
                 deadline_ms=None)
    return ensavro.encode("InferenceRequest", datum)


def huge_count_request(rid, n_features):
    """A request whose data array declares 2^40 floats and holds n_features."""
    ok = request(rid, [0.0] * n_features)
    floats = struct.pack("<%df" % n_features, *([0.0] * n_features))
    tail = zigzag(n_features) + floats + b"\x00\x00"  # block, end of array, deadline null
    assert ok.endswith(tail)
    return ok[:-len(tail)] + zigzag(1 << 40) + floats + b"\x00\x00"


def bad_enum_result(run):
    hdr = ensavro.new_header()
    datum = dict(hdr, study_id="s-hostile-" + run, trial_id="t-0001", model_id="m", status="OK",
                 epochs_done=1.0, val_accuracy=0.5, val_loss=1.0, train_seconds=1.0, error=None,
                 train_samples_per_second=1.0)
    ok = ensavro.encode("TrialResult", datum)
    at = 10 + len(avro_str(hdr["event_id"])) + len(zigzag(hdr["occurred_at"])) + \
        len(avro_str(datum["study_id"])) + len(avro_str("t-0001")) + len(avro_str("m"))
    assert ok[at] == 0  # OK is symbol 0
    return ok[:at] + zigzag(5) + ok[at + 1:]


def main():
    bootstrap, pid, n_feat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    prefix = sys.argv[4] if len(sys.argv) > 4 else "ensflow."
    run = uuid.uuid4().hex[:8]
    req_topic, res_topic = prefix + "inference.requests", prefix + "trial.results"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hostile-" + run,
                         "auto.offset.reset": "latest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 5, "fetch.message.max.bytes": 4 << 20})
    consumer.subscribe([prefix + "inference.responses", prefix + "dlq"])
    deadline = time.time() + 30
    while not consumer.assignment() and time.time() < deadline:
        consumer.poll(0.2)
    time.sleep(1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5,
                         "message.max.bytes": 8 << 20})
    x = [0.1 * i for i in range(n_feat)]
    rss0 = rss_kb(pid)

    want_dlq = {}    # payload prefix -> kind
    want_err = {}    # request id -> kind
    for r in range(ROUNDS):
        msgs = [
            ("oversized", req_topic, request("h-%s-big-%d" % (run, r), [1.0] * 300000)),
            ("declared length", req_topic, huge_count_request("h-%s-len-%d" % (run, r), n_feat)),
            ("truncated body", req_topic, request("h-%s-trunc-%d" % (run, r), x)[:-40]),
            ("unknown enum symbol", res_topic, bad_enum_result(run)),
        ]
        for kind, topic, payload in msgs:
            want_dlq[payload[:64]] = kind
            producer.produce(topic, payload, key="h-%s-%d" % (run, r))
        shapes = {"huge dimensions": [2 ** 31 - 1] * 8}
        values = {"NaN": float("nan"), "+Inf": float("inf"), "-Inf": float("-inf"),
                  "3e38": 3e38}
        for kind, shape in shapes.items():
            rid = "h-%s-dims-%d" % (run, r)
            want_err[rid] = kind
            producer.produce(req_topic, request(rid, x, shape=shape), key=rid)
        for kind, v in values.items():
            rid = "h-%s-%s-%d" % (run, kind, r)
            want_err[rid] = kind
            producer.produce(req_topic, request(rid, [v] + x[1:]), key=rid)
        producer.flush(30)
    ok_id = "h-%s-ok" % run
    producer.produce(req_topic, request(ok_id, x), key=ok_id)
    producer.flush(30)

    got_dlq, got_err, answered_ok = {}, {}, None
    deadline = time.time() + 90
    while time.time() < deadline and (len(got_err) < len(want_err) or answered_ok is None or
                                      len(set(got_dlq)) < len(want_dlq)):
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        try:
            name, d = ensavro.decode(msg.value())
        except ValueError:
            continue
        if name == "DeadLetter" and d["payload"][:64] in want_dlq:
            got_dlq.setdefault(d["payload"][:64], []).append(d)
        elif name == "InferenceResponse" and d["request_id"] in want_err:
            got_err[d["request_id"]] = d
        elif name == "InferenceResponse" and d["request_id"] == ok_id:
            answered_ok = d
    consumer.close()

    for kind in ("oversized", "declared length", "truncated body", "unknown enum symbol"):
        keys = [k for k, v in want_dlq.items() if v == kind]
        recs = [d for k in keys for d in got_dlq.get(k, [])]
        reasons = sorted({"%s: %s" % (d["service"], d["reason"][:70]) for d in recs})
        check("%s dead-lettered (%d of %d)" % (kind, len({k for k in keys if k in got_dlq}),
                                                len(keys)),
              all(k in got_dlq for k in keys) and all(d["reason"] for d in recs),
              "; ".join(reasons[:3]))
    big = [d for k, v in want_dlq.items() if v == "oversized" for d in got_dlq.get(k, [])]
    check("oversized: reason names the limit and the copy is cut",
          bool(big) and all("max-message-bytes" in d["reason"] and len(d["payload"]) <= 1 << 20
                            for d in big))
    for kind in ("huge dimensions", "NaN", "+Inf", "-Inf"):
        ids = [k for k, v in want_err.items() if v == kind]
        rs = [got_err.get(i) for i in ids]
        check("%s gets ERROR responses (%d of %d)" % (kind, sum(r is not None for r in rs),
                                                     len(ids)),
              all(r is not None and r["status"] == "ERROR" and r["error"] for r in rs),
              str(rs[0] and rs[0]["error"]))
    # whether a huge finite value overflows depends on the deployed members' weights: the
    # service must answer either way, and never with a non-finite probability
    rs = [got_err.get(k) for k, v in want_err.items() if v == "3e38"]
    check("3e38 answered: ERROR, or OK with finite probabilities (%d of %d)"
          % (sum(r is not None for r in rs), len(rs)),
          all(r is not None and ((r["status"] == "ERROR" and r["error"]) or
                                 (r["status"] == "OK" and r["probabilities"] and
                                  all(math.isfinite(q) for q in r["probabilities"]) and
                                  abs(sum(r["probabilities"]) - 1) < 1e-3)) for r in rs),
          str(rs[0] and (rs[0]["error"] or rs[0]["status"])))
    check("a valid request after all of it is answered",
          answered_ok is not None and answered_ok["status"] == "OK")
    alive = os.path.exists("/proc/%d" % pid)
    rss1 = rss_kb(pid) if alive else -1
    check("the inference process kept running (pid %d)" % pid, alive)
    check("inference RSS bounded: %d kB before, %d kB after" % (rss0, rss1),
          alive and rss1 - rss0 < 64 * 1024)
    print("hostile: %s" % ("all checks passed" if not failures else "%d failed" % failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
