"""ensavro - ensflow events as Avro single-object encoding, in Python (python3-avro), for tests.

Independent of the C side on purpose: it reads the same schemas/*.avsc files and implements
the wire format from the Avro specification, so agreement between the two is a real check.

    import ensavro
    data = ensavro.encode("TrialJob", {...})          # C3 01 + fingerprint + body
    name, datum = ensavro.decode(data)               # ("TrialJob", {...})

Notes on python3-avro 1.11.1 (Debian 12):
- Schema.canonical_form is wrong for primitives carrying attributes: {"type":"long",
  "logicalType":"timestamp-millis"} becomes {"type":"long"} instead of "long", which changes the
  fingerprint. This module therefore computes the Parsing Canonical Form itself.
- There is no fingerprint function; CRC-64-AVRO is implemented here.
- timestamp-millis fields are read as datetime objects; this module hands out and accepts plain
  integers (milliseconds since the epoch) for them, like the C structs.
"""

import datetime
import io
import json
import os
import uuid
import time
from collections import namedtuple

import avro.io
import avro.schema

MARKER = b"\xc3\x01"
EMPTY64 = 0xC15D213AA4D7A795
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

Schema = namedtuple("Schema", "name file json avro canonical fingerprint")


def default_schema_dir():
    src = os.environ.get("ENSFLOW_SOURCE_DIR")
    if src:
        return os.path.join(src, "schemas")
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                         "schemas"))


def rabin64(data):
    """CRC-64-AVRO (Rabin) fingerprint of bytes, as an unsigned 64-bit int."""
    fp = EMPTY64
    for b in data:
        fp ^= b
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY64 & -(fp & 1))
    return fp & 0xFFFFFFFFFFFFFFFF


def _fullname(name, ns):
    return name if "." in name or not ns else ns + "." + name


def _canon(s, ns):
    if isinstance(s, str):
        return s if s in PRIMITIVES else _fullname(s, ns)
    if isinstance(s, list):
        return [_canon(b, ns) for b in s]
    if not isinstance(s, dict) or "type" not in s:
        raise ValueError("a schema must be a string, a list or an object with \"type\"")
    t = s["type"]
    if not isinstance(t, str):
        return _canon(t, ns)
    if t in ("record", "error", "enum", "fixed"):
        full = _fullname(s["name"], s.get("namespace", ns))
        inner = full.rpartition(".")[0]
        out = {"name": full, "type": t}
        if t == "enum":
            out["symbols"] = list(s["symbols"])
        elif t == "fixed":
            out["size"] = int(s["size"])
        else:
            out["fields"] = [{"name": f["name"], "type": _canon(f["type"], inner)}
                             for f in s["fields"]]
        return out
    if t == "array":
        return {"type": "array", "items": _canon(s["items"], ns)}
    if t == "map":
        return {"type": "map", "values": _canon(s["values"], ns)}
    return t if t in PRIMITIVES else _fullname(t, ns)


def canonical_form(schema_json):
    """Parsing Canonical Form (Avro spec) of a schema given as JSON text or parsed JSON."""
    if isinstance(schema_json, (str, bytes)):
        schema_json = json.loads(schema_json)
    return json.dumps(_canon(schema_json, ""), separators=(",", ":"), ensure_ascii=False)


def fingerprint(schema_json):
    return rabin64(canonical_form(schema_json).encode("utf-8"))


def load_file(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    js = json.loads(text)
    canon = canonical_form(js)
    return Schema(js["name"], path, js, avro.schema.parse(text), canon,
                  rabin64(canon.encode("utf-8")))


_registries = {}


def _registry(schema_dir=None):
    """{"current": {name: Schema}, "by_fp": {fingerprint: Schema}} for a schema directory."""
    d = schema_dir or default_schema_dir()
    if d not in _registries:
        current, by_fp = {}, {}
        for sub, is_current in ((d, True), (os.path.join(d, "history"), False)):
            if not os.path.isdir(sub):
                continue
            for fn in sorted(os.listdir(sub)):
                if fn.endswith(".avsc"):
                    s = load_file(os.path.join(sub, fn))
                    by_fp[s.fingerprint] = s
                    if is_current:
                        current[s.name] = s
        _registries[d] = {"current": current, "by_fp": by_fp}
    return _registries[d]


def load(name, schema_dir=None):
    """The current schema of an event type ("TrialJob")."""
    return _registry(schema_dir)["current"][name]


def _timestamp_fields(schema):
    return [f["name"] for f in schema.json["fields"]
            if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"]


def new_header():
    """event_id and occurred_at for a fresh event."""
    return {"event_id": str(uuid.uuid4()), "occurred_at": int(time.time() * 1000)}


def encode(schema, datum, schema_dir=None):
    """Single-object encoding of datum (a dict) with a Schema or the current schema of a name."""
    if isinstance(schema, str):
        schema = load(schema, schema_dir)
    datum = dict(datum)
    # top-level fields left out take their schema default, as a reader would fill them
    for field in schema.avro.fields:
        if field.name not in datum and field.has_default:
            datum[field.name] = field.default
    for name in _timestamp_fields(schema):
        if isinstance(datum.get(name), int):
            datum[name] = _EPOCH + datetime.timedelta(milliseconds=datum[name])
    buf = io.BytesIO()
    avro.io.DatumWriter(schema.avro).write(datum, avro.io.BinaryEncoder(buf))
    return MARKER + schema.fingerprint.to_bytes(8, "little") + buf.getvalue()


def decode(data, schema_dir=None):
    """(name, dict) of a single-object-encoded message; older writer schemas are resolved into
    the current one. Raises ValueError on a bad marker, unknown fingerprint or trailing bytes."""
    if len(data) < 10 or data[:2] != MARKER:
        raise ValueError("bad marker")
    fp = int.from_bytes(data[2:10], "little")
    reg = _registry(schema_dir)
    writer = reg["by_fp"].get(fp)
    if writer is None:
        raise ValueError("unknown fingerprint 0x%016x" % fp)
    reader = reg["current"][writer.name]
    buf = io.BytesIO(data[10:])
    datum = avro.io.DatumReader(writer.avro, reader.avro).read(avro.io.BinaryDecoder(buf))
    if buf.tell() != len(data) - 10:
        raise ValueError("trailing bytes after the body")
    for name in _timestamp_fields(reader):
        if isinstance(datum.get(name), datetime.datetime):
            datum[name] = (datum[name] - _EPOCH) // datetime.timedelta(milliseconds=1)
    return writer.name, datum
