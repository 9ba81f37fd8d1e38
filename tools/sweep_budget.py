"""Quality against diffusion steps per token on the embedded model: one sweep of the
annealing strategies and samplers at 3-4 budgets each, run by disa-gen, summarised as one
Markdown table (models/README.md, "Steps per token against quality").

    python3 tools/sweep_budget.py [--images 1000] [--seeds 1 2] [--np 2] [--out results/sweep]
                                  [--only REGEX] [--restart] [--build build] [--estimate]

Every point samples --images images per seed with the demo's settings (jobs/demo.json:
model, classifier, reference statistics, K, CFG, temperature), so the table reads like
the demo's comparison. Points (requested steps; the table shows the measured mean of
distinct network evaluations per token, which the 950 clip makes a little lower for
DiSA at 22 steps and more):

  constant   DiSA sampler, n clipped steps at every AR step        n = 10, 15, 20, 28
  linear     DiSA upper -> 5                                        upper = 15, 25, 35, 50
  cosine     DiSA upper -> 5                                        upper = 15, 25, 35, 50
  two-stage  DiSA upper -> 5                                        upper = 15, 25, 35, 50
  adaptive   DiSA 50 -> 5, var signal, --diff_budget = linear's mean at each upper above
  dpm        DPM_Solver (order 1, the official call), linear       8->3, 15->5, 25->5, 50->5
  dpm++      DPM_Solver++ order 2, linear                           8->3, 15->5, 25->5, 50->5

--estimate prints what disa-gen --estimate predicts for the whole sweep on this machine (the
FLOP model of every point, calibrated by sampling a first unit) and runs nothing.
A run writes OUT/seedS/<job>.json and the images under OUT/seedS/<point>/, and resumes
where it stopped (disa-gen's ledger) unless --restart. The table goes to OUT/table.md
and the numbers to OUT/points.json; FID and class accuracy are the mean over seeds
with the spread (max - min) beside them.
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from marref import adaptive  # noqa: E402  (the mask schedule; no torch needed)
UPPERS = (15, 25, 35, 50)


def _weighted_mean(K, L, steps):
    """Mean requested steps per token of a per-AR-step schedule."""
    t = adaptive.tokens_per_step(K, L)
    return sum(a * b for a, b in zip(t, steps)) / sum(t)


def points(K, L):
    """(name, strategy, setting, sampling) of every point of the sweep."""
    pts = []
    for n in (10, 15, 20, 28):
        pts.append((f"constant-{n}", "constant (clipped)", f"{n} steps",
                    {"diff_sampler": "DiSA", "diff_upper_steps": n, "diff_lower_steps": n,
                     "diff_annealing_strategy": "constant"}))
    for strat in ("linear", "cosine", "two-stage"):
        for u in UPPERS:
            pts.append((f"{strat}-{u}-5", strat, f"{u} -> 5",
                        {"diff_sampler": "DiSA", "diff_upper_steps": u, "diff_lower_steps": 5,
                         "diff_annealing_strategy": strat}))
    for u in UPPERS:
        steps = [5 + int((K - 1 - s) / (K - 1) * (u - 5)) for s in range(K)] if K > 1 else [u]
        b = round(_weighted_mean(K, L, steps), 4)
        pts.append((f"adaptive-{b:g}", "adaptive (var)", f"budget {b:g} (50 -> 5)",
                    {"diff_sampler": "DiSA", "diff_upper_steps": 50, "diff_lower_steps": 5,
                     "diff_annealing_strategy": "adaptive", "diff_budget": b, "diff_adaptive_signal": "var"}))
    for name, smp, order in (("dpm", "DPM_Solver", 1), ("dpmpp", "DPM_Solver++", 2)):
        for u, lo in ((8, 3), (15, 5), (25, 5), (50, 5)):
            pts.append((f"{name}-o{order}-{u}-{lo}", f"{smp} order {order}", f"linear {u} -> {lo}",
                        {"diff_sampler": smp, "dpm_order": order, "diff_upper_steps": u, "diff_lower_steps": lo,
                         "diff_annealing_strategy": "linear"}))
    return pts


def model_tokens(path):
    """seq_len of a disa-mar-1 safetensors file (from its JSON config)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        head = json.loads(f.read(n))
    c = json.loads(head["__metadata__"]["config"])
    h = c["img_size"] // c["vae_stride"] // c["patch_size"]
    return h * h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--out", default="results/sweep")
    ap.add_argument("--only", default="", help="run only the points whose name matches this regex")
    ap.add_argument("--restart", action="store_true")
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--job", default="jobs/demo.json", help="the job whose settings the points share")
    ap.add_argument("--estimate", action="store_true",
                    help="write the job files and print disa-gen --estimate's cost of the sweep; run nothing")
    a = ap.parse_args()
    os.chdir(ROOT)
    demo = json.load(open(a.job))
    K = int(demo["sampling"]["num_iter"])
    L = model_tokens(demo["model"])
    pts = [p for p in points(K, L) if re.search(a.only, p[0])]
    if not pts:
        sys.exit(f"sweep_budget: no point matches --only '{a.only}'")
    if a.images % 10 or a.images % demo.get("eval_bsz", 50):
        sys.exit(f"sweep_budget: --images must be a multiple of the 10 classes and of eval_bsz "
                 f"{demo.get('eval_bsz', 50)}, got {a.images}")
    jobs = []
    for seed in a.seeds:
        d = os.path.join(a.out, f"seed{seed}")
        os.makedirs(d, exist_ok=True)
        job = {k: demo[k] for k in ("model", "vae", "features", "reference", "eval_bsz", "sampling") if k in demo}
        job.update(name=f"sweep-seed{seed}", output_dir=d, num_images=a.images, seed=seed,
                   variants=[{"name": n, "sampling": smp} for n, _, _, smp in pts])
        path = os.path.join(d, "job.json")
        with open(path, "w") as f:
            json.dump(job, f, indent=1)
        jobs.append(path)
    cmd = ["sh", "tools/mpirun.sh", str(a.np), os.path.join(a.build, "bin", "disa-gen")] + jobs
    if a.estimate:
        cmd.append("--estimate")
    else:
        cmd += ["--progress", "60"] + (["--restart"] if a.restart else [])
    print("sweep_budget:", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if rc:
        sys.exit(f"sweep_budget: disa-gen exited {rc}")
    if a.estimate:
        return

    rows = []
    for name, strat, setting, smp in pts:
        per = []
        for seed in a.seeds:
            s = json.load(open(os.path.join(a.out, f"seed{seed}", name, "summary.json")))
            m = s.get("metrics", {})
            per.append((s["mean_diffusion_steps_per_token"], m.get("FID"), m.get("class_accuracy"),
                        s["s_per_image"]["p50"]))
        steps = sum(p[0] for p in per) / len(per)
        fid = [p[1] for p in per if p[1] is not None]
        acc = [p[2] for p in per if p[2] is not None]
        rows.append(dict(name=name, strategy=strat, setting=setting, steps=steps,
                         fid=sum(fid) / len(fid) if fid else None, fid_spread=max(fid) - min(fid) if fid else None,
                         acc=sum(acc) / len(acc) if acc else None, acc_spread=max(acc) - min(acc) if acc else None,
                         s_img=sum(p[3] for p in per) / len(per), sampling=smp))
    with open(os.path.join(a.out, "points.json"), "w") as f:
        json.dump(dict(images=a.images, seeds=a.seeds, job=a.job, points=rows), f, indent=1)
    lines = [f"{a.images} images per point, seeds {' '.join(map(str, a.seeds))}, settings of {a.job} "
             f"(K = {K}); FID in the classifier's feature space (floor at this size: see above); "
             "± is the spread (max - min) over seeds.", "",
             "| strategy | setting | steps/token | FID | class accuracy | s/image (p50) |",
             "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["strategy"], r["steps"])):
        fid = "-" if r["fid"] is None else f"{r['fid']:.1f} ± {r['fid_spread']:.1f}"
        acc = "-" if r["acc"] is None else f"{100 * r['acc']:.1f}% ± {100 * r['acc_spread']:.1f}"
        lines.append(f"| {r['strategy']} | {r['setting']} | {r['steps']:.2f} | {fid} | {acc} | {r['s_img']:.3f} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(a.out, "table.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
