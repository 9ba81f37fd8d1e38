#!/usr/bin/env python3
"""Damaged copies of a safetensors file, for the bad-input tests (tests/bad_inputs.md).

    python3 tests/tools/st_tamper.py IN OUT EDIT...

EDIT is one of
    value:NAME:INDEX:V      set element INDEX of F32 tensor NAME to V (nan, inf, -inf or a number)
    config:KEY:JSON         set key KEY of the "config" metadata (a JSON object) to JSON
    extra:NAME              add a 1-element F32 tensor NAME
    trailer:TEXT            append TEXT after the header's JSON object, inside the header length
Only the standard library: runs with any python3.
"""
import json
import math
import struct
import sys


def read(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write(path, header, data, trailer=""):
    text = json.dumps(header, separators=(",", ":")) + trailer
    blob = text.encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + data)


def main():
    src, dst, edits = sys.argv[1], sys.argv[2], sys.argv[3:]
    header, data = read(src)
    data = bytearray(data)
    trailer = ""
    for e in edits:
        kind, _, rest = e.partition(":")
        if kind == "value":
            name, idx, v = rest.split(":")
            t = header[name]
            assert t["dtype"] == "F32", f"{name} is {t['dtype']}, not F32"
            val = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(v)
            val = float(v) if val is None else val
            off = t["data_offsets"][0] + 4 * int(idx)
            data[off:off + 4] = struct.pack("<f", val)
        elif kind == "config":
            key, _, value = rest.partition(":")
            meta = header["__metadata__"]
            cfg = json.loads(meta["config"])
            cfg[key] = json.loads(value)
            meta["config"] = json.dumps(cfg, separators=(",", ":"))
        elif kind == "extra":
            end = len(data)
            header[rest] = {"dtype": "F32", "shape": [1], "data_offsets": [end, end + 4]}
            data += struct.pack("<f", 0.5)
        elif kind == "trailer":
            trailer = rest
        else:
            sys.exit(f"st_tamper: unknown edit '{e}'")
    write(dst, header, bytes(data), trailer)


if __name__ == "__main__":
    main()
