#!/usr/bin/python3
"""Convert the FID Inception-v3 weights to safetensors for disa (src/model/inception.c).

    /usr/bin/python3 tools/convert_inception.py WEIGHTS.pth OUT.safetensors

WEIGHTS.pth is either torch-fidelity's weights-inception-2015-12-05-6726825d.pth
(the 'inception-v3-compat' extractor) or pytorch-fid's pt_inception-2015-12-05-*.pth:
both are state_dicts of the TF 2015-12-05 graph ported to PyTorch under the same names
(Conv2d_1a_3x3.conv.weight, Mixed_5b.branch1x1.bn.running_var, ..., fc.weight,
fc.bias). The tensors are written as F32 under those names; num_batches_tracked
entries are dropped; any other missing or unexpected key, or a shape other than the
architecture's, stops the conversion with the full list. The metadata "config" holds
{"format": "disa-inception-1", "source": <file name>, "sha256": <of the .pth>}.

    /usr/bin/python3 tools/convert_inception.py --random OUT.pth [--seed S]

writes a randomly initialised state_dict of the same architecture (for testing the
converter and the C loader when the real weights are not at hand). The weights are
never downloaded by this tool.
"""
import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402
from inception import FIDInception  # noqa: E402  (tools/golden/inception.py: the reference network)


def expected_shapes():
    sd = FIDInception().state_dict()
    return {k: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}


def convert(src, out):
    sd = torch.load(src, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    want = expected_shapes()
    problems = []
    tensors = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        if k not in want:
            problems.append(f"unexpected tensor '{k}' {tuple(v.shape)}")
            continue
        if tuple(v.shape) != want[k]:
            problems.append(f"'{k}': got {list(v.shape)}, expected {list(want[k])}")
            continue
        tensors[k] = v.detach().float().numpy().astype(np.float32)
    problems += [f"missing tensor '{k}' {list(s)}" for k, s in want.items() if k not in sd]
    if problems:
        sys.exit(f"{src}: not the FID Inception-v3 state_dict:\n  " + "\n  ".join(problems))
    h = hashlib.sha256(open(src, "rb").read()).hexdigest()
    cfg = {"format": "disa-inception-1", "source": os.path.basename(src), "sha256": h}
    ordered = {k: tensors[k] for k in want}
    stio.save_file(out, ordered, {"config": json.dumps(cfg, separators=(",", ":"))})
    n = sum(int(np.prod(s)) for s in want.values())
    print(f"{out}: {len(ordered)} tensors, {n} values, from {src} (sha256 {h[:12]})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--random", metavar="OUT_PTH", help="write a random state_dict of the architecture")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.random:
        torch.manual_seed(a.seed)
        m = FIDInception().eval()
        with torch.no_grad():
            for name, b in m.named_buffers():  # non-trivial BN statistics
                if name.endswith("running_mean"):
                    b.uniform_(-0.1, 0.1)
                elif name.endswith("running_var"):
                    b.uniform_(0.5, 1.5)
        torch.save(m.state_dict(), a.random)
        print(f"{a.random}: random FID Inception state_dict (seed {a.seed})")
        return
    if not a.src or not a.out:
        ap.error("give WEIGHTS.pth and OUT.safetensors (or --random OUT.pth)")
    convert(a.src, a.out)


if __name__ == "__main__":
    main()
