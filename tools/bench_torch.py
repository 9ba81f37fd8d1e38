"""Peer comparison for `make bench`: the same MAR configuration sampled by the PyTorch
reference (tools/marref, fp32) for a few AR steps, timed per phase.

    OMP_WAIT_POLICY=PASSIVE python3 tools/bench_torch.py --model F --threads N \
        [--batch 1 --num_iter 4 --cfg 2.9 --diff_sampler disa --upper 50 --lower 5] --json OUT

The settings must be the ones `disa-bench --run` timed (tools/bench.sh passes the same),
so the ratio torch / disa of the two wall times compares like with like: the same
mask schedule, diffusion step counts, CFG rows and batch. Weights come from the same
safetensors file through tools/stio.py. Only wall time is compared; the outputs differ
(numpy/torch RNG here, Philox in disa).

    python3 tools/bench_torch.py --model F --threads N --extrapolate DISA_BENCH.json --json OUT

times the K = 64 schedules of a `disa-bench --extrapolate` run the same way disa-bench
does: one transformer pass at each of its step shapes (the same known / predicted
token counts and batch), GFLOPS interpolated over n_known with the FLOPs this code
performs (a full last decoder block: "transformer_full"), and one diffusion step of the
head (forward_with_cfg + the DDPM update) at every distinct row count.
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
    ap.add_argument("--extrapolate", help="disa-bench --json output of an --extrapolate run")
    ap.add_argument("--t_reps", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.extrapolate:
        return extrapolate(a)
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


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def extrapolate(a):
    from marref import diffusion as gd
    torch.set_num_threads(a.threads)
    with open(a.extrapolate) as f:
        dj = json.load(f)
    e = dj["extrapolate"]
    B, cfg_scale = dj["batch"], a.cfg
    m, cfg = M.load_safetensors(a.model)
    m.eval()
    L, C = m.seq_len, m.token_embed_dim
    guided = cfg_scale != 1.0
    B2 = 2 * B if guided else B
    sched, bsched = e["schedule"], e["baseline_schedule"]
    g = torch.Generator().manual_seed(0)
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "batch": B, "num_iter": e["num_iter"],
           "t_points": [], "head_points": []}
    with torch.no_grad():
        # Transformer at disa-bench's step shapes: the same known-token count per image
        # (the pattern does not change the FLOPs), both CFG halves as one batch.
        full = {s["n_known"]: s["transformer_full"] for s in sched}
        pts = []
        for tp in e["t_points"]:
            nk = tp["n_known"]
            tokens = torch.randn(B2, L, C, generator=g)
            mask = torch.ones(B2, L)
            if nk:
                mask[:, torch.linspace(0, L - 1, nk).long()] = 0
            labels = torch.arange(B2) % cfg["class_num"]
            ce = m.class_emb(labels)
            m.transformer(tokens, mask, ce)  # warm-up: allocator, weights in cache
            ts = []
            for _ in range(max(1, a.t_reps)):
                t0 = time.perf_counter()
                m.transformer(tokens, mask, ce)
                ts.append(time.perf_counter() - t0)
            sec = median(ts)
            gflops = full[nk] / sec / 1e9
            pts.append((nk, gflops))
            res["t_points"].append({"n_known": nk, "s": sec, "flops": full[nk], "gflops": gflops})
            print(f"bench_torch: transformer, batch {B}, n_known {nk}: {sec:.3f} s, {gflops:.1f} GFLOPS")
        pts.sort()

        def interp(nk):
            if nk <= pts[0][0]:
                return pts[0][1]
            for (k0, g0), (k1, g1) in zip(pts, pts[1:]):
                if nk <= k1:
                    return g0 + (nk - k0) / (k1 - k0) * (g1 - g0)
            return pts[-1][1]

        # Head: one diffusion step at every distinct row count (>= 3 steps or 0.3 s).
        tab = gd.make_tables(50, "disa")
        i = tab.num_timesteps // 2
        head = {}
        for r in sorted({s["rows"] for s in sched + bsched}):
            z = torch.randn(r, cfg["decoder_embed_dim"], generator=g)
            x = torch.randn(r, C, generator=g)
            t = torch.full((r,), int(tab.timestep_map[i]), dtype=torch.int64)
            fn = (lambda x_: m.diffloss.net.forward_with_cfg(x_, t, z, cfg_scale)) if guided else \
                (lambda x_: m.diffloss.net.forward(x_, t, z))
            ts, start = [], time.perf_counter()
            while len(ts) < 40 and (len(ts) < 3 or time.perf_counter() - start < 0.3):
                t0 = time.perf_counter()
                out = fn(x)
                eps, var = out[:, :C], out[:, C:]
                gd.ddpm_step(tab, i, x, eps, var, torch.randn(x.shape, generator=g), 1.0)
                ts.append(time.perf_counter() - t0)
            head[r] = median(ts)
            res["head_points"].append({"rows": r, "s_per_diff_step": head[r]})
        print(f"bench_torch: head, {len(head)} row counts: " +
              ", ".join(f"{r}: {1e3 * s:.1f} ms" for r, s in sorted(head.items())))

    def total(sc):
        tt = sum(s["transformer_full"] / (interp(s["n_known"]) * 1e9) for s in sc)
        th = sum(s["diff_steps"] * head[s["rows"]] for s in sc)
        return tt / B, th / B

    for name, sc in (("per_image", sched), ("baseline_per_image", bsched)):
        tt, th = total(sc)
        res[name] = {"t_transformer": tt, "t_head": th, "t_total": tt + th}
        print(f"bench_torch: {name}: transformer {tt:.2f} s, head {th:.2f} s, total {tt + th:.2f} s per image")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
