"""Peer comparison for `make bench`: the same MAR configuration sampled by the PyTorch
reference (tools/marref, fp32) for a few AR steps, timed per phase.

    OMP_WAIT_POLICY=PASSIVE python3 tools/bench_torch.py --model F --threads N \
        [--batch 1 --num_iter 4 --cfg 2.9 --diff_sampler disa --upper 50 --lower 5] --json OUT

The settings must be the ones `disa-bench --run` timed (tools/bench.sh passes the same),
so the ratio torch / disa of the two wall times compares like with like: the same
mask schedule, diffusion step counts, CFG rows and batch. Weights come from the same
safetensors file through tools/stio.py. Only wall time is compared; the outputs differ
(numpy/torch RNG here, Philox in disa).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

from marref import model as M  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--num_iter", type=int, default=4)
    ap.add_argument("--cfg", type=float, default=2.9)
    ap.add_argument("--diff_sampler", default="disa")
    ap.add_argument("--upper", type=int, default=50)
    ap.add_argument("--lower", type=int, default=5)
    ap.add_argument("--annealing", default="linear")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    m, cfg = M.load_safetensors(a.model)
    t_load = time.perf_counter() - t0

    # Per-phase timers around the two calls sample_tokens makes per AR step.
    phase = {"transformer": 0.0, "head": 0.0}
    tr, smp = m.transformer, m.diffloss.sample

    def timed(name, fn):
        def run(*args, **kw):
            t = time.perf_counter()
            out = fn(*args, **kw)
            phase[name] += time.perf_counter() - t
            return out
        return run
    m.transformer = timed("transformer", tr)
    m.diffloss.sample = timed("head", smp)

    labels = torch.arange(a.batch) % cfg["class_num"]
    t0 = time.perf_counter()
    m.sample_tokens(a.batch, num_iter=a.num_iter, cfg=a.cfg, cfg_schedule="linear", labels=labels,
                    temperature=1.0, diff_sampler=a.diff_sampler, upper_steps=a.upper,
                    lower_steps=a.lower, annealing=a.annealing)
    wall = time.perf_counter() - t0
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "batch": a.batch,
           "num_iter": a.num_iter, "cfg": a.cfg, "diff_sampler": a.diff_sampler, "upper": a.upper,
           "lower": a.lower, "wall_s": wall, "t_transformer": phase["transformer"],
           "t_head": phase["head"], "load_s": t_load}
    print(f"bench_torch: torch {torch.__version__}, {res['threads']} threads, batch {a.batch}, K {a.num_iter}: "
          f"wall {wall:.2f} s (transformer {phase['transformer']:.2f} s, head {phase['head']:.2f} s)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
