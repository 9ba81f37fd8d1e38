"""Goldens for the runner's own op: the deterministic generator (tools/stio.py: dgen)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import stio  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden")

for seed, scale, shape in [(0, 1.0, (1000,)), (12345, 0.02, (7, 13)), (2**40 + 3, 3.5, (257,))]:
    x = stio.dgen(seed, shape, scale)
    stio.save_file(os.path.join(OUT, f"core_dgen_{seed}.safetensors"), {"out.x": x}, {
        "op": "dgen", "config": json.dumps({"seed": seed, "scale": scale}),
        "atol": "0", "rtol": "0", "generator": "tools/golden/core.py",
        "description": f"deterministic generator seed {seed} scale {scale}, bit-exact"})
