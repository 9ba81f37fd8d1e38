"""safetensors read/write and the deterministic parameter generator shared by the tools.

Debian 12 ships no Python safetensors package, and the format is small (8-byte length,
JSON header, raw little-endian data), so it is written here with the standard library and
numpy. The C side is src/io/safetensors.c; tests/golden/README.md documents the layout.
"""
import json
import struct

import numpy as np

_DTYPES = {
    np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
    np.dtype("int32"): "I32", np.dtype("int64"): "I64", np.dtype("uint8"): "U8",
    np.dtype("int8"): "I8",
}
_NP = {v: k for k, v in _DTYPES.items()}


def save_file(path, tensors, metadata=None):
    """Write `tensors` (name -> numpy array) in insertion order; metadata values must be str.

    Written to path + '.tmp' and renamed so a crash never leaves a partial file."""
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(v, str):
                raise TypeError(f"metadata '{k}' must be a str, got {type(v).__name__}")
        header["__metadata__"] = dict(metadata)
    off = 0
    blobs = []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype not in _DTYPES:
            raise TypeError(f"tensor '{name}': unsupported dtype {arr.dtype}")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # keep data 8-byte aligned for mmap use
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    import os
    os.replace(tmp, path)


def load_file(path):
    """Return (tensors: dict name -> numpy array, metadata: dict str -> str)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        dt = _NP[info["dtype"]] if info["dtype"] != "BF16" else None
        if dt is None:
            u16 = np.frombuffer(raw[base + a:base + b], dtype="<u2").astype(np.uint32)
            out[name] = (u16 << 16).view(np.float32).reshape(info["shape"])
        else:
            out[name] = np.frombuffer(raw[base + a:base + b], dtype=dt.newbyteorder("<")) \
                .reshape(info["shape"]).astype(dt)
    return out, meta


# ----------------------------------------------------------------------------
# Deterministic generator (same definition as src/core/dgen.c):
#   z_i = seed * 0xD1B54A32D192ED03 + (i + 1) * 0x9E3779B97F4A7C15   (mod 2^64)
#   z ^= z >> 30; z *= 0xBF58476D1CE4E5B9; z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31
#   u_i = (z >> 40) / 2^24                       (24-bit, exact in float32)
#   x_i = float32(scale * (2 * u_i - 1))         (product in float64, rounded once)
# Large goldens store only (seed, scale, shape) for their parameters and both sides
# regenerate them, which keeps full-size cases out of the repository.

_M = np.uint64(0xFFFFFFFFFFFFFFFF)


def dgen(seed, shape, scale, offset=None):
    """x_i as above; with `offset`, float32(offset + x_i) computed in float64 (param_gen "offset")."""
    if offset is not None:
        return (np.float64(offset) + dgen(seed, shape, scale).astype(np.float64)).astype(np.float32)
    n = int(np.prod(shape)) if len(shape) else 1
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(seed) * np.uint64(0xD1B54A32D192ED03) + i * np.uint64(0x9E3779B97F4A7C15)
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u = (z >> np.uint64(40)).astype(np.float64) / float(1 << 24)
    return (scale * (2.0 * u - 1.0)).astype(np.float32).reshape(shape)
