"""Golden cases for the adaptive strategy's step choices: tests/golden/adaptive_*.safetensors.

The choices come from the Python reference tools/marref/adaptive.py (the rule of
include/disa/adaptive.h) applied to recorded signals; C side: src/sample/adaptive.c,
adapter op adapt_steps in tests/parity/parity_sample.c. Integer outputs: exact.

  in.g      [B, L] F32   each image's signals in sampling order: the rows of AR step 0,
                         then of step 1, ... (positions ascending within a step)
  in.tokens [K] I64      tokens per image at each AR step
  config    L, lower, upper, budget
  out.n     [B, L] I64   the requested steps of each of those rows

Cases: the cfg signal recorded from the embedded model (models/fmnist-mar.safetensors,
K = 16, one token per AR step, CFG 3, the demo's settings) at the two budgets the rule was
chosen at; the var signal of a tiny model with several tokens per AR step; and made-up
signals for the edges (all zero = no CFG, a spike that the cap and the upper clamp cut,
a NaN, ties).

Run with Debian's PyTorch: /usr/bin/python3 tools/golden/adaptive.py
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import stio  # noqa: E402
from marref import adaptive as ad  # noqa: E402
from marref import model as M  # noqa: E402
import mar_goldens as mg  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
OUT_DIR = os.path.join(ROOT, 'tests', 'golden')
GENERATOR = "tools/golden/adaptive.py"

_written = []


def choices(g, tokens, L, lower, upper, budget):
    """out.n for signals g [B, L] in sampling order."""
    n = np.zeros(g.shape, dtype=np.int64)
    for b in range(g.shape[0]):
        st, pos = ad.State(), 0
        for P in tokens:
            c, _ = ad.choose(list(g[b, pos:pos + P]), L, lower, upper, budget, st)
            n[b, pos:pos + P] = c
            pos += P
    return n


def save(name, g, tokens, L, lower, upper, budget, description):
    n = choices(g, tokens, L, lower, upper, budget)
    meta = {"op": "adapt_steps", "config": json.dumps({"L": L, "lower": lower, "upper": upper, "budget": budget},
                                                      sort_keys=True),
            "rtol": "0.0", "atol": "0.0", "generator": GENERATOR,
            "description": f"{description}; mean {n.mean():.3f} of budget {budget}"}
    path = os.path.join(OUT_DIR, f"adaptive_{name}.safetensors")
    stio.save_file(path, {"in.g": g.astype(np.float32), "in.tokens": np.array(tokens, dtype=np.int64),
                          "out.n": n}, meta)
    _written.append(path)


def recorded(model, B, K, cfg, lower, upper, budget, signal, seed):
    """Signals [B, L] in sampling order from an adaptive run of `model` (float32)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    trace = {}
    model.sample_tokens(B, num_iter=K, cfg=cfg, labels=torch.arange(B) % 10, diff_sampler="disa",
                        upper_steps=upper, lower_steps=lower, annealing="adaptive", budget=budget,
                        signal=signal, trace=trace)
    g = np.zeros((B, model.seq_len), dtype=np.float32)
    pos = 0
    for s, rows in enumerate(trace["g"]):
        P = len(rows) // B
        for b in range(B):
            g[b, pos:pos + P] = rows[b * P:(b + 1) * P]
        pos += P
    return g, ad.tokens_per_step(K, model.seq_len)


def main():
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    fm = os.path.join(ROOT, "models", "fmnist-mar.safetensors")
    model, _ = M.load_safetensors(fm)
    g, tokens = recorded(model, 4, 16, 3.0, 5, 50, 14.6875, "cfg", 1)
    for budget in (9.6875, 14.6875):
        save(f"fmnist_cfg_{budget:g}", g, tokens, model.seq_len, 5, 50, budget,
             f"cfg signal of 4 images of {os.path.basename(fm)} (K 16, CFG 3), 50 -> 5")
    tiny = mg.mar_model(mg.SEQ64, seed=42)
    g, tokens = recorded(tiny, 3, 6, 2.0, 2, 12, 6.0, "var", 2)
    save("s64_var", g, tokens, tiny.seq_len, 2, 12, 6.0, "var signal of a tiny model, 64 tokens over K 6, 12 -> 2")
    # made-up edges, 16 tokens over K = 5 (tokens per step 2, 3, 4, 4, 3)
    tokens = ad.tokens_per_step(5, 16)
    rng = np.random.default_rng(7)
    g = np.abs(rng.standard_normal((4, 16))).astype(np.float32)
    g[0] = 0.0                          # no CFG: every token its even share
    g[1, 5] = 1e6                       # a spike: the cap and the upper clamp
    g[2, 3] = np.nan                    # NaN: lower
    g[3, :] = 0.25                      # ties: all equal
    save("edges", g, tokens, 16, 3, 20, 7.7, "made-up signals: zeros, a spike, a NaN, ties; 20 -> 3")
    for p in _written:
        print(f"{os.path.relpath(p, ROOT)}  {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main()
