#!/usr/bin/python3
"""test_codec.py - ensavro (Python side of the wire format) on its own: vectors, round trips,
schema resolution and bad input. Run: /usr/bin/python3 tests/interop/test_codec.py"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ensavro  # noqa: E402

HEADER = {"event_id": "0b7e3f9a-1111-4222-8333-444455556666", "occurred_at": 1777777777777}


def sample(name):
    d = dict(HEADER)
    d.update({
        "StudyCreated": {"study_id": "s-1", "dataset": "fashion-mnist", "search_space_json": "{}",
                         "n_trials": 64, "epochs": 2.5, "seed": 1 << 40, "val_fraction": 0.2,
                         "top_k": 5, "scheduler": "asha", "eta": 3.0, "min_epochs": 0.5,
                         "max_epochs_budget": 100.0, "max_wall_seconds": 60.0},
        "TrialJob": {"study_id": "s-1", "trial_id": "t-7", "config_json": "{\"lr\":0.01}",
                     "dataset": "/data/idx", "val_fraction": 0.1, "seed": -42, "epochs": 8.0,
                     "from_epoch": 4.0, "attempt": 2},
        "TrialResult": {"study_id": "s-1", "trial_id": "t-7", "model_id": "m-7",
                        "status": "FAILED", "epochs_done": 3.0, "val_accuracy": 0.5,
                        "val_loss": 1.25, "train_seconds": 60.0, "error": "diverged",
                        "train_samples_per_second": 99.0},
        "ModelEvaluated": {"study_id": "s-1", "trial_id": "t-2", "model_id": "m-3",
                           "val_accuracy": 0.88, "val_logloss": 0.4, "n_params": 1234567,
                           "ms_per_sample": 0.05, "batch_size": 64, "memory_bytes": 5 << 30,
                           "n_val": 6000, "n_classes": 10},
        "EnsembleFront": {"study_id": "s-1", "front_id": "f-9", "n_models": 12, "ensembles": [
            {"ensemble_id": "e-%d" % i, "method": "topk", "members": ["m-%d" % j
                                                                      for j in range(i + 1)],
             "weights": [1.0 / (i + 1)] * (i + 1), "val_accuracy": 0.8, "holdout_accuracy": 0.79,
             "cost_ms_per_sample": 0.1 * (i + 1), "memory_bytes": (i + 1) << 20,
             "val_logloss": 0.25 + i / 8.0, "holdout_logloss": 0.375 - i / 16.0}
            for i in range(3)]},
        "DeployCommand": {"study_id": "s-1", "ensemble_id": "", "max_cost_ms": 0.5,
                          "max_memory_bytes": 1 << 32, "min_accuracy": 0.85},
        "PlacementPlan": {"study_id": "s-1", "plan_id": "p-4", "ensemble_id": "e-2", "version": 4,
                          "members": [{"model_id": "m-0", "weight": 0.75, "device": "cpu",
                                       "instances": 1, "batch_size": 32},
                                      {"model_id": "m-1", "weight": 0.25, "device": "cuda:0",
                                       "instances": 2, "batch_size": 64}],
                          "predicted_throughput": 12000.5},
        "InferenceRequest": {"request_id": "r-1", "shape": [1, 28, 28],
                             "data": [i / 256.0 for i in range(784)],  # exact in float32
                             "deadline_ms": None},
        "InferenceResponse": {"request_id": "r-1", "status": "OK", "error": None,
                              "predicted_class": 7, "probabilities": [0.5, 0.25, 0.25],
                              "ensemble_id": "e-2", "plan_version": 9,
                              "model_versions": ["m-1@3", "m-2@1"]},
        "DeadLetter": {"source_topic": "ensflow.trial.results", "partition": 3,
                       "offset": 1 << 35, "service": "selector", "reason": "bad marker",
                       "payload": b"\x00\xff\x01zz"},
    }[name])
    return d


NAMES = ["StudyCreated", "TrialJob", "TrialResult", "ModelEvaluated", "EnsembleFront",
         "DeployCommand", "PlacementPlan", "InferenceRequest", "InferenceResponse", "DeadLetter"]


class Codec(unittest.TestCase):
    def test_fingerprint_vectors(self):
        # Avro spec / share/test/data/schema-tests.txt
        self.assertEqual(ensavro.rabin64(b'"int"'), 0x7275D51A3F395C8F)
        self.assertEqual(ensavro.rabin64(b'"string"'), 0x8F014872634503C7)
        self.assertEqual(ensavro.rabin64(b""), ensavro.EMPTY64)
        self.assertEqual(ensavro.fingerprint('{"type":"int"}'), 8247732601305521295)
        rec = '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}'
        self.assertEqual(ensavro.canonical_form(rec),
                         '{"name":"x.y.foo","type":"record","fields":[]}')
        self.assertEqual(ensavro.fingerprint(rec), 5916914534497305771)
        enum = ('{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", '
                '"symbols":["A1", "A2"]}')
        self.assertEqual(ensavro.fingerprint(enum), (-4448647247586288245) & (2**64 - 1))

    def test_canonical_matches_python_avro(self):
        # python-avro's own canonical form, with its logicalType quirk undone, must agree.
        for name in NAMES:
            s = ensavro.load(name)
            theirs = s.avro.canonical_form.replace('{"type":"long"}', '"long"')
            self.assertEqual(s.canonical, theirs, name)

    def test_round_trips(self):
        for name in NAMES:
            data = ensavro.encode(name, sample(name))
            self.assertEqual(data[:2], b"\xc3\x01")
            self.assertEqual(int.from_bytes(data[2:10], "little"), ensavro.load(name).fingerprint)
            got_name, got = ensavro.decode(data)
            self.assertEqual(got_name, name)
            self.assertEqual(got, sample(name), name)

    def test_old_writer_is_resolved(self):
        here = os.path.dirname(ensavro.load("TrialResult").file)
        v1 = ensavro.load_file(os.path.join(here, "history", "TrialResult.v1.avsc"))
        self.assertNotEqual(v1.fingerprint, ensavro.load("TrialResult").fingerprint)
        old = sample("TrialResult")
        del old["train_samples_per_second"]
        name, got = ensavro.decode(ensavro.encode(v1, old))
        self.assertEqual(name, "TrialResult")
        self.assertEqual(got.pop("train_samples_per_second"), 0.0)
        self.assertEqual(got, old)

    def test_old_front_is_resolved(self):
        # EnsembleFront v1's ensembles lack the log-losses (a nested record): 0, unknown
        here = os.path.dirname(ensavro.load("EnsembleFront").file)
        v1 = ensavro.load_file(os.path.join(here, "history", "EnsembleFront.v1.avsc"))
        self.assertNotEqual(v1.fingerprint, ensavro.load("EnsembleFront").fingerprint)
        old = sample("EnsembleFront")
        for e in old["ensembles"]:
            del e["val_logloss"], e["holdout_logloss"]
        name, got = ensavro.decode(ensavro.encode(v1, old))
        self.assertEqual(name, "EnsembleFront")
        self.assertEqual(len(got["ensembles"]), 3)
        for e in got["ensembles"]:
            self.assertEqual((e.pop("val_logloss"), e.pop("holdout_logloss")), (0.0, 0.0))
        self.assertEqual(got, old)

    def test_bad_input(self):
        data = ensavro.encode("TrialJob", sample("TrialJob"))
        with self.assertRaisesRegex(ValueError, "bad marker"):
            ensavro.decode(b"\xc3\x02" + data[2:])
        with self.assertRaisesRegex(ValueError, "bad marker"):
            ensavro.decode(data[:9])
        with self.assertRaisesRegex(ValueError, "unknown fingerprint 0x"):
            ensavro.decode(data[:2] + bytes(8) + data[10:])
        with self.assertRaisesRegex(ValueError, "trailing"):
            ensavro.decode(data + b"\x00")

    def test_schema_files(self):
        for name in NAMES:
            s = ensavro.load(name)
            self.assertEqual(s.json["namespace"], "ensflow")
            fields = s.json["fields"]
            self.assertEqual([f["name"] for f in fields[:2]], ["event_id", "occurred_at"])
            self.assertEqual(fields[1]["type"], {"type": "long", "logicalType": "timestamp-millis"})
            for f in fields:
                self.assertTrue(f.get("doc"), "%s.%s has no doc" % (name, f["name"]))
        self.assertTrue(json.dumps(ensavro.load("TrialResult").json).count("default") >= 2)


if __name__ == "__main__":
    unittest.main(verbosity=1)
