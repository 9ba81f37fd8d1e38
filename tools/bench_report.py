"""Collects the raw JSON of tools/bench.sh into results/bench/<date>.json and the
Markdown table results/bench/<date>.md, with the issue's targets marked met / not met.

    python3 tools/bench_report.py RAW_DIR OUT.json OUT.md --threads N --seconds S
"""
import argparse
import glob
import json
import os


def load(path):
    with open(path) as f:
        return json.load(f)


def pct(g, peak):
    return 100.0 * g / peak if peak else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("out_json")
    ap.add_argument("out_md")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=0)
    a = ap.parse_args()
    R = a.raw
    info = open(os.path.join(R, "info.txt")).read().strip()
    cpu_f = os.path.join(R, "cpu.txt")
    cpu = open(cpu_f).read().strip() if os.path.exists(cpu_f) else "unknown CPU"
    load_start = open(os.path.join(R, "load_start.txt")).read().strip()
    load_end = open(os.path.join(R, "load_end.txt")).read().strip()
    sg = load(os.path.join(R, "sgemm.json"))
    peak = sg["sgemm"]["median_gflops"]
    b = {bs: load(os.path.join(R, f"mar_base_b{bs}.json")) for bs in (1, 8, 32, 64)}
    t1 = os.path.join(R, "mar_base_b1_t1.json")
    rows = [(1, b[1], a.threads, "mar_base_b1")]
    if os.path.exists(t1):
        rows.append((1, load(t1), 1, "mar_base_b1_t1"))
    rows += [(bs, b[bs], a.threads, f"mar_base_b{bs}") for bs in (8, 32, 64)]

    def local(name, threads=a.threads):
        """The sgemm peak of a section: measured right before it (tools/bench.sh) and, at the
        bench's thread count, never below the peak measured at the start, so a section that
        met a busier machine is not flattered by a lower denominator."""
        f = os.path.join(R, f"peak_{name}.json")
        pk = load(f)["sgemm"]["median_gflops"] if os.path.exists(f) else peak
        return max(pk, peak) if threads == a.threads else pk
    dec = b[1]["decode"]
    feat = b[1]["features"]
    big = {p: load(os.path.join(R, f"{p}_b1.json")) for p in ("mar_large", "mar_huge")}
    torch = load(os.path.join(R, "torch.json"))
    gens = {os.path.basename(p)[4:-5]: load(p) for p in sorted(glob.glob(os.path.join(R, "gen_*.json")))}

    out = {"date": os.path.basename(R).replace(".raw", ""), "cpu": cpu, "blas": info, "blas_core": sg["blas_core"],
           "threads": a.threads, "load_avg_start": load_start, "load_avg_end": load_end,
           "bench_seconds": a.seconds, "sgemm": sg["sgemm"], "peak_gflops": peak, "mar_base": {}, "targets": {}}
    md = []
    md.append(f"# disa bench {out['date']}\n")
    md.append(f"- CPU: {cpu}. OpenBLAS: `{info.splitlines()[0]}`; {a.threads} threads; load average at start {load_start}, "
              f"at end {load_end} (read the numbers with the load: the machine may be shared).")
    md.append(f"- sgemm 2048^3 peak at the start: **{peak:.1f} GFLOPS** (median of {sg['sgemm']['reps']}: "
              f"{', '.join('%.0f' % x for x in sg['sgemm']['all'])}).")
    md.append("- Every section quotes % of peak against an sgemm peak (median of 5, its own thread count) "
              "measured right before it, but at the bench's thread count never below the peak of the start: "
              "the load of a shared machine drifts within minutes.")
    md.append(f"- MAR-B/L/H, KL-16 and Inception have random weights (disa-mkmodel, disa-stats "
              f"--make-random-inception); CFG on (2.9 / 3.0 / 3.2), linear CFG schedule.")
    md.append("- K = 64 figures are extrapolated: every AR step's FLOPs are exact (flops.h); the transformer is "
              "timed at 3 (batch 1) or 1 (batch 8, 32, 64) step shapes and its GFLOPS interpolated over n_known, the "
              "head is timed per diffusion step at every distinct row count of the schedule. "
              f"Whole bench: {a.seconds:.0f} s.")
    md.append("- The targets are read at batch 64, disa-gen's default work unit (eval_bsz, main_mar.py's default).\n")

    md.append("## MAR-B, per image at K = 64 (baseline: default sampler 100 steps; DiSA 50->5 linear)\n")
    md.append("| batch | threads | local sgemm peak | s / AR step (batch) | s / diff. step, DiSA mean (batch) | transformer GFLOPS (% peak) | "
              "head GFLOPS DiSA (% peak) | head late half (% peak) | baseline s/img | DiSA s/img | DiSA speedup "
              "measured / predicted | end-to-end s/img (DiSA + decode + features) | end-to-end GFLOPS (% peak) |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lp = {}
    for bs, j, th, name in rows:
        pk = lp[name] = local(name, th)
        e = j["extrapolate"]
        pi, bp = e["per_image"], e["baseline_per_image"]
        fl = j["flops_per_image"]
        e2e_t = pi["t_total"] + dec["s_per_image"] + feat["s_per_image"]
        e2e_g = fl["total"] / e2e_t / 1e9
        row = {"s_per_ar_step": pi["s_per_ar_step"], "s_per_diff_step": pi["s_per_diff_step"],
               "baseline_s_per_diff_step": bp["s_per_diff_step"],
               "gflops_transformer": pi["gflops_transformer"], "gflops_head": pi["gflops_head"],
               "gflops_head_late": pi["gflops_head_late"], "baseline_s_per_image": bp["t_total"],
               "disa_s_per_image": pi["t_total"], "speedup_measured": e["speedup_measured"],
               "speedup_predicted": e["speedup_predicted"], "end_to_end_s_per_image": e2e_t,
               "end_to_end_gflops": e2e_g, "end_to_end_pct_peak": pct(e2e_g, pk), "local_peak_gflops": pk,
               "transformer_points": e["t_points"], "head_points": e["head_points"]}
        out["mar_base"][f"batch_{bs}" + ("" if th == a.threads else f"_threads_{th}")] = row
        md.append(f"| {bs} | {th} | {pk:.0f} | {pi['s_per_ar_step']:.2f} | {pi['s_per_diff_step']:.4f} | "
                  f"{pi['gflops_transformer']:.1f} ({pct(pi['gflops_transformer'], pk):.0f}%) | "
                  f"{pi['gflops_head']:.1f} ({pct(pi['gflops_head'], pk):.0f}%) | "
                  f"{pi['gflops_head_late']:.1f} ({pct(pi['gflops_head_late'], pk):.0f}%) | {bp['t_total']:.1f} | "
                  f"{pi['t_total']:.1f} | {e['speedup_measured']:.2f}x / {e['speedup_predicted']:.2f}x | {e2e_t:.1f} | "
                  f"{e2e_g:.1f} ({pct(e2e_g, pk):.0f}%) |")
    ranks = [load(f) for f in sorted(glob.glob(os.path.join(R, "mar_base_b64_rank*.json")))]
    if ranks:
        # N processes of 1 thread at once: images/s add up; FLOPs per image are the same.
        f64 = b[64]["flops_per_image"]
        fs = f64["transformer"] + f64["head"]
        rate = sum(1.0 / j["extrapolate"]["per_image"]["t_total"] for j in ranks)
        rate_b = sum(1.0 / j["extrapolate"]["baseline_per_image"]["t_total"] for j in ranks)
        r1 = out["mar_base"]["batch_64"]
        pk = lp["mar_base_b64"]
        g_1x = fs / r1["disa_s_per_image"] / 1e9
        g_nx = fs * rate / 1e9
        out["layout_b64"] = {"ranks": len(ranks), "disa_s_per_image": 1 / rate, "baseline_s_per_image": 1 / rate_b,
                             "sampling_gflops": g_nx, "sampling_pct_peak": pct(g_nx, pk),
                             "one_rank_sampling_gflops": g_1x, "one_rank_sampling_pct_peak": pct(g_1x, pk)}
        md.append(f"\nLayout at batch 64 (sampling only, the machine's throughput; % of the {a.threads}-thread sgemm peak "
                  f"{pk:.0f}):\n")
        md.append("| layout | DiSA s/img | baseline s/img | sampling GFLOPS (% peak) |")
        md.append("|---|---|---|---|")
        md.append(f"| 1 rank x {a.threads} threads | {r1['disa_s_per_image']:.1f} | {r1['baseline_s_per_image']:.1f} | "
                  f"{g_1x:.1f} ({pct(g_1x, pk):.0f}%) |")
        md.append(f"| {len(ranks)} ranks x 1 thread | {1 / rate:.1f} | {1 / rate_b:.1f} | {g_nx:.1f} ({pct(g_nx, pk):.0f}%) |")

    fl = b[1]["flops_per_image"]
    fb = b[1]["baseline_flops_per_image"]
    md.append(f"\nFLOPs per image (analytic, equal to the engine's count): transformer {fl['transformer'] / 1e12:.2f} T, "
              f"head {fl['head'] / 1e12:.3f} T DiSA ({fl['nfe_per_token']:.2f} NFE/token) vs {fb['head'] / 1e12:.3f} T "
              f"baseline, KL-16 decode {fl['decode'] / 1e9:.0f} G, Inception {fl['features'] / 1e9:.1f} G.\n")
    md.append(f"- KL-16 decode: {dec['s_per_image']:.2f} s/image, {dec['gflops']:.1f} GFLOPS "
              f"({pct(dec['gflops'], lp['mar_base_b1']):.0f}% of the local peak); counted {dec['flops'] / 1e9:.1f} GFLOP = model "
              f"{dec['flops_model'] / 1e9:.1f}.")
    md.append(f"- Inception features: {feat['s_per_image']:.3f} s/image, {feat['gflops']:.1f} GFLOPS "
              f"({pct(feat['gflops'], lp['mar_base_b1']):.0f}% of the local peak); counted {feat['flops'] / 1e9:.2f} GFLOP, model "
              f"{'equal' if feat['flops'] == feat['flops_model'] else 'DIFFERS'}.")
    out["decode"], out["features"] = dec, feat

    run = b[1]["run"]
    md.append(f"\n## Real sampler, MAR-B batch 1, K = 4, DiSA 50->5 (sampler_run, per AR step)\n")
    md.append("| step | tokens | diff. steps | transformer s | head s | s / diff. step | GFLOPS tr. | GFLOPS head |")
    md.append("|---|---|---|---|---|---|---|---|")
    for s in run["steps"]:
        md.append(f"| {s['step']} | {s['n_pred']} | {s['diff_steps']} | {s['t_transformer']:.2f} | {s['t_head']:.2f} | "
                  f"{s['t_head'] / s['diff_steps']:.4f} | {s['gflops_transformer']:.1f} | {s['gflops_head']:.1f} |")
    md.append(f"\nTotal {run['wall_s']:.2f} s; FLOPs counted = FLOP model: {run['model_equal']}.")
    out["run_b1_k4"] = run

    md.append("\n## MAR-L and MAR-H, batch 1 (K = 64 extrapolated)\n")
    md.append("| model | local sgemm peak | s / AR step | s / diff. step (DiSA mean) | transformer GFLOPS (% peak) | head GFLOPS | "
              "baseline s/img | DiSA s/img | speedup measured / predicted |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    for p, j in big.items():
        pk = local(f"{p}_b1")
        e = j["extrapolate"]
        pi, bp = e["per_image"], e["baseline_per_image"]
        out[p] = {"s_per_ar_step": pi["s_per_ar_step"], "s_per_diff_step": pi["s_per_diff_step"],
                  "gflops_transformer": pi["gflops_transformer"], "gflops_head": pi["gflops_head"],
                  "baseline_s_per_image": bp["t_total"], "disa_s_per_image": pi["t_total"],
                  "speedup_measured": e["speedup_measured"], "speedup_predicted": e["speedup_predicted"],
                  "flops_per_image": j["flops_per_image"]}
        out[p]["local_peak_gflops"] = pk
        md.append(f"| {p} | {pk:.0f} | {pi['s_per_ar_step']:.2f} | {pi['s_per_diff_step']:.4f} | {pi['gflops_transformer']:.1f} "
                  f"({pct(pi['gflops_transformer'], pk):.0f}%) | {pi['gflops_head']:.1f} | {bp['t_total']:.0f} | "
                  f"{pi['t_total']:.0f} | {e['speedup_measured']:.2f}x / {e['speedup_predicted']:.2f}x |")

    fl_rows = [(p, load(os.path.join(R, f"{p}.json"))) for p in ("flowar_small", "flowar_huge")
               if os.path.exists(os.path.join(R, f"{p}.json"))]
    if fl_rows:
        md.append("\n## FlowAR-S and FlowAR-H (whole runs of both schedules, random weights)\n")
        md.append("DiSA: flow_upper_steps -> 15 over the 5 scales (25 -> 15 for S, 50 -> 15 for H, the README's cfg and "
                  "guidance); baseline: the upper count at every scale (the official sampler before DiSA).\n")
        md.append("| model | batch | local sgemm peak | baseline s/img | DiSA s/img | transformer GFLOPS (% peak) | "
                  "head GFLOPS DiSA (% peak) | evaluations per token (DiSA / baseline) | speedup measured / predicted | "
                  "FLOPs counted = model |")
        md.append("|---|---|---|---|---|---|---|---|---|---|")
        for p, j in fl_rows:
            pk = local(p)
            r, rb = j["run"], j["baseline_run"]
            out.setdefault("flowar", {})[p] = {
                "batch": j["batch"], "config": j["config"], "baseline": j["baseline"], "local_peak_gflops": pk,
                "disa_s_per_image": r["s_per_image"], "baseline_s_per_image": rb["s_per_image"],
                "gflops_transformer": r["gflops_transformer"], "gflops_head": r["gflops_head"],
                "speedup_measured": j["speedup_measured"], "speedup_predicted": j["predicted_speedup"]["sampling"],
                "flops_per_image": j["flops_per_image"], "baseline_flops_per_image": j["baseline_flops_per_image"],
                "model_equal": r["model_equal"] and rb["model_equal"]}
            md.append(f"| {p} | {j['batch']} | {pk:.0f} | {rb['s_per_image']:.1f} | {r['s_per_image']:.1f} | "
                      f"{r['gflops_transformer']:.1f} ({pct(r['gflops_transformer'], pk):.0f}%) | "
                      f"{r['gflops_head']:.1f} ({pct(r['gflops_head'], pk):.0f}%) | "
                      f"{j['flops_per_image']['nfe_per_token']:.2f} / {j['baseline_flops_per_image']['nfe_per_token']:.2f} | "
                      f"{j['speedup_measured']:.2f}x / {j['predicted_speedup']['sampling']:.2f}x | "
                      f"{'yes' if r['model_equal'] and rb['model_equal'] else 'NO'} |")

    md.append("\n## disa-gen, small MAR-B job (K 2, DiSA 10->5, KL-16 decode, PNGs, 2 images, units of 1)\n")
    md.append("| layout | wall s | images/s | compute phases s | overhead (IO, scheduling, idle) | RSS peak MiB per rank | "
              "PSS MiB per rank |")
    md.append("|---|---|---|---|---|---|---|")
    gen_over = {}
    for name, g in gens.items():
        ph = g["phases_s"]
        comp = ph["transformer"] + ph["diffusion_head"] + ph["decode"] + ph["features"]
        denom = g["world_size"] * g["wall_s"]
        over = 1 - comp / denom if denom > 0 else 0
        gen_over[name] = over
        rss = ", ".join("%.0f" % r.get("rss_peak_mib", 0) for r in g["ranks"])
        pss = ", ".join("%.0f" % r.get("pss_mib", 0) for r in g["ranks"])
        out.setdefault("disa_gen", {})[name] = {"wall_s": g["wall_s"], "images_per_s": g["images_per_s"],
                                                "compute_s": comp, "overhead_share": over, "phases_s": ph,
                                                "ranks": g["ranks"]}
        md.append(f"| {name.replace('x', ' rank(s) x ')} thread(s) | {g['wall_s']:.1f} | {g['images_per_s']:.4f} | "
                  f"{comp:.1f} | {100 * over:.1f}% | {rss} | {pss} |")

    ratio = torch["wall_s"] / run["wall_s"]
    out["torch"] = dict(torch, ratio_torch_over_disa=ratio)
    md.append(f"\n## PyTorch reference (tools/marref, torch {torch['torch']}, fp32, {torch['threads']} threads, "
              f"OMP_WAIT_POLICY={torch['omp_wait_policy']})\n")
    md.append(f"Same MAR-B weights and settings as the batch-1 K = 4 run: torch {torch['wall_s']:.2f} s (transformer "
              f"{torch['t_transformer']:.2f} s, head {torch['t_head']:.2f} s) vs disa {run['wall_s']:.2f} s "
              f"(transformer {run['t_transformer']:.2f} s, head {run['t_head']:.2f} s): time ratio torch / disa = "
              f"**{ratio:.2f}** ({'disa faster' if ratio >= 1 else 'torch faster'}).")

    tk = {}
    for bs in (1, 64):
        f = os.path.join(R, f"torch_b{bs}_k64.json")
        if not os.path.exists(f):
            continue
        tj = load(f)
        d = out["mar_base"][f"batch_{bs}"]
        tk[bs] = {"torch": tj, "ratio_disa": tj["per_image"]["t_total"] / d["disa_s_per_image"],
                  "ratio_baseline": tj["baseline_per_image"]["t_total"] / d["baseline_s_per_image"]}
    if tk:
        out["torch_k64"] = tk
        md.append(f"\nAt K = 64, extrapolated the same way for both (each timed at disa-bench's step shapes; torch "
                  f"computes the full last decoder block, so its FLOPs per pass are higher):\n")
        md.append("| batch | torch transformer GFLOPS | torch DiSA s/img (transformer + head) | disa DiSA s/img | "
                  "torch / disa DiSA | torch baseline s/img | disa baseline s/img | torch / disa baseline |")
        md.append("|---|---|---|---|---|---|---|---|")
        for bs, t in tk.items():
            tj, d = t["torch"], out["mar_base"][f"batch_{bs}"]
            pi, bp = tj["per_image"], tj["baseline_per_image"]
            md.append(f"| {bs} | {', '.join('%.1f' % p['gflops'] for p in tj['t_points'])} | {pi['t_total']:.1f} "
                      f"({pi['t_transformer']:.1f} + {pi['t_head']:.1f}) | {d['disa_s_per_image']:.1f} | "
                      f"**{t['ratio_disa']:.2f}** | {bp['t_total']:.1f} | {d['baseline_s_per_image']:.1f} | "
                      f"{t['ratio_baseline']:.2f} |")

    t1j, tt1 = os.path.join(R, "mar_base_b1_t1.json"), os.path.join(R, "torch_t1.json")
    ratio1 = None
    if os.path.exists(t1j) and os.path.exists(tt1) and "run" in load(t1j):
        run1, torch1 = load(t1j)["run"], load(tt1)
        ratio1 = torch1["wall_s"] / run1["wall_s"]
        out["torch_1_thread"] = dict(torch1, disa_wall_s=run1["wall_s"], ratio_torch_over_disa=ratio1)
        md.append(f"\nAt 1 thread each: torch {torch1['wall_s']:.2f} s (transformer {torch1['t_transformer']:.2f} s, "
                  f"head {torch1['t_head']:.2f} s) vs disa {run1['wall_s']:.2f} s (transformer "
                  f"{run1['t_transformer']:.2f} s, head {run1['t_head']:.2f} s): time ratio torch / disa = "
                  f"**{ratio1:.2f}**.")

    bf = None
    bfj = os.path.join(R, "mar_base_b64_bf16.json")
    bpj = os.path.join(R, "bf16_peak.json")
    if os.path.exists(bfj) and os.path.exists(bpj):
        j = load(bfj)
        e = j["extrapolate"]
        pi = e["per_image"]
        bp = load(bpj)
        # Measured right before the section, like the sgemm peaks: the best median of N^3 and
        # the model's Linear shapes (older runs: the N^3 median alone).
        best = bp.get("bf16_peak_best")
        pk = best["gflops"] if best else bp["bf16_peak"]["median_gflops"]
        n3 = bp["bf16_peak"]["median_gflops"]
        isa_f = os.path.join(R, "onednn_verbose.txt")
        isa_line = [l for l in open(isa_f).read().splitlines() if ",isa:" in l] if os.path.exists(isa_f) else []
        f32 = out["mar_base"]["batch_64"]
        fl = j["flops_per_image"]
        dec16, feat16 = j["decode"], j["features"]
        e2e_t = pi["t_total"] + dec16["s_per_image"] + feat16["s_per_image"]
        e2e_g = fl["total"] / e2e_t / 1e9
        bf = {"cpu": cpu, "onednn": bp["bf16_peak"]["onednn"], "isa": bp["bf16_peak"]["isa"],
              "isa_verbose": isa_line[0].split(",isa:", 1)[1] if isa_line else None,
              "peak": bp["bf16_peak"], "shapes": bp.get("bf16_shapes", []),
              "s_per_ar_step": pi["s_per_ar_step"], "s_per_diff_step": pi["s_per_diff_step"],
              "gflops_transformer": pi["gflops_transformer"], "gflops_head": pi["gflops_head"],
              "gflops_head_late": pi["gflops_head_late"], "disa_s_per_image": pi["t_total"],
              "baseline_s_per_image": e["baseline_per_image"]["t_total"], "local_peak_gflops": pk,
              "decode": dec16, "features": feat16, "end_to_end_s_per_image": e2e_t, "end_to_end_gflops": e2e_g,
              "end_to_end_pct_peak": pct(e2e_g, pk), "speedup_over_fp32": f32["disa_s_per_image"] / pi["t_total"],
              "end_to_end_speedup_over_fp32": f32["end_to_end_s_per_image"] / e2e_t}
        if 64 in tk:
            bf["ratio_torch_over_disa"] = tk[64]["torch"]["per_image"]["t_total"] / pi["t_total"]
        for name in ("mar_base", "fmnist"):
            f = os.path.join(R, f"bf16_tokens_{name}.json")
            if os.path.exists(f):
                bf.setdefault("tokens", {})[name] = load(f)
        if os.path.exists(os.path.join(R, "bf16_check.json")):
            bf["one_evaluation"] = load(os.path.join(R, "bf16_check.json"))["bf16_check"]
        out["bf16"] = bf
        md.append("\n## --precision bf16 (oneDNN bf16 matmuls with fused epilogues, fp32 accumulation and statistics; "
                  "KL-16 decode in bf16 convolutions, Inception fp32)\n")
        md.append(f"- {cpu}; oneDNN {bf['onednn']}, ISA `{bf['isa']}`"
                  + (f" (ONEDNN_VERBOSE: {bf['isa_verbose']})" if bf["isa_verbose"] else "") + f", {a.threads} threads.")
        at = (f"the best median of {bp['bf16_peak']['n']}^3 and the Linear shapes below, reached at "
              f"{best['at']}" if best else f"{bp['bf16_peak']['n']}^3")
        md.append(f"- bf16 matmul peak through the primitive the model's Linears run (packed weights, fp32 output), "
                  f"{at}: **{pk:.1f} GFLOPS**; {bp['bf16_peak']['n']}^3 alone: median {n3:.1f} of "
                  f"{bp['bf16_peak']['reps']} reps ({', '.join('%.0f' % x for x in bp['bf16_peak']['all'])}); "
                  f"the sgemm peak of the fp32 batch-64 row was {f32['local_peak_gflops']:.1f}. The rows below are "
                  f"shares of this bf16 peak.")
        if bf["shapes"]:
            md.append("\n| MAR-B Linear shape (same run) | M x N x K | GFLOPS | % of bf16 peak |")
            md.append("|---|---|---|---|")
            for s in bf["shapes"]:
                md.append(f"| {s['name']} | {s['M']} x {s['N']} x {s['K']} | {s['median_gflops']:.1f} | "
                          f"{pct(s['median_gflops'], pk):.0f}% |")
        md.append("\n| batch | s / AR step | transformer GFLOPS (% bf16 peak) | head GFLOPS (% bf16 peak) | "
                  "head late half (% bf16 peak) | DiSA s/img | baseline s/img | decode s/img (bf16) | "
                  "features s/img (fp32) | end-to-end s/img | end-to-end GFLOPS (% bf16 peak) | speedup over fp32 "
                  "(DiSA / end to end) | torch fp32 / disa bf16 |")
        md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        md.append(f"| 64 | {bf['s_per_ar_step']:.2f} | {bf['gflops_transformer']:.1f} ({pct(bf['gflops_transformer'], pk):.0f}%) | "
                  f"{bf['gflops_head']:.1f} ({pct(bf['gflops_head'], pk):.0f}%) | "
                  f"{bf['gflops_head_late']:.1f} ({pct(bf['gflops_head_late'], pk):.0f}%) | {bf['disa_s_per_image']:.1f} | "
                  f"{bf['baseline_s_per_image']:.1f} | {dec16['s_per_image']:.2f} | {feat16['s_per_image']:.3f} | "
                  f"{e2e_t:.1f} | {e2e_g:.1f} ({pct(e2e_g, pk):.0f}%) | {bf['speedup_over_fp32']:.2f}x / "
                  f"{bf['end_to_end_speedup_over_fp32']:.2f}x | {bf.get('ratio_torch_over_disa', float('nan')):.2f} |")
        md.append("\nQuality against fp32 (fp32 equals the PyTorch reference to ~4e-7, tests/parity):\n")
        if "one_evaluation" in bf:
            o1 = bf["one_evaluation"]
            md.append(f"- One evaluation, MAR-B shapes (random weights, batch {o1['batch']}, CFG, half the tokens known): "
                      f"transformer output z normwise error {o1['z']:.3g}; one head step: eps {o1['eps']:.3g}, variance "
                      f"channels {o1['var']:.3g}.")
        for name, label in (("mar_base", "MAR-B shapes, random weights, 2 images, K = 8, CFG 2.9"),
                            ("fmnist", "the embedded Fashion-MNIST model, 20 images, K = 16, CFG 3.0")):
            t = bf.get("tokens", {}).get(name)
            if t:
                md.append(f"- Tokens after the whole loop ({label}, DiSA 50->5, same seed): max difference "
                          f"{t['max_abs']:.3g} (normwise {t['normwise']:.3g}), rms {t['rms']:.3g} against an rms token of "
                          f"{t['rms_fp32']:.3g}.")
        md.append("- Random MAR-B weights give tokens up to ~3e4 (the untrained head's variance and noise "
                  "predictions), and the loop feeds every difference forward; the trained model is the better guide, "
                  "and on the demo's FID and class accuracy (models/README.md) bf16 changes nothing beyond noise.")
    elif os.path.exists(os.path.join(R, "bf16_check.txt")):
        md.append("\n## --precision bf16\n\nNot available here: " +
                  open(os.path.join(R, "bf16_check.txt")).read().strip().splitlines()[-1])

    xar_report(R, out, md, local)

    # Targets, read at batch 64 (disa-gen's default unit).
    bt = out["mar_base"]["batch_64"]
    mb = out["mar_base"]
    tg = []
    e2e = bt["end_to_end_pct_peak"]
    tg.append(("end to end >= 75% of sgemm peak, FLOP-weighted (MAR-B DiSA, batch 64, + decode + features)",
               e2e >= 75, f"{e2e:.0f}% ({bt['end_to_end_gflops']:.1f} of {bt['local_peak_gflops']:.1f} GFLOPS); "
               + (f"sampling alone {out['layout_b64']['one_rank_sampling_pct_peak']:.0f}% as 1 rank x {a.threads} threads, "
                  f"{out['layout_b64']['sampling_pct_peak']:.0f}% as {out['layout_b64']['ranks']} ranks x 1 thread; "
                  if "layout_b64" in out else "")
               + ", ".join(f"batch {k}: {mb[f'batch_{k}']['end_to_end_pct_peak']:.0f}%" for k in (1, 8, 32))))
    hl = pct(bt["gflops_head_late"], bt["local_peak_gflops"])
    tg.append(("head >= 60% of peak at DiSA's small late-step batches (late half of K, batch 64)", hl >= 60,
               f"{hl:.0f}% ({bt['gflops_head_late']:.1f} GFLOPS); "
               + ", ".join(f"batch {k}: {pct(mb[f'batch_{k}']['gflops_head_late'], mb[f'batch_{k}']['local_peak_gflops']):.0f}%"
                           for k in (1, 8, 32))))
    if 64 in tk:
        r64 = tk[64]["ratio_disa"]
        rb = bf.get("ratio_torch_over_disa") if bf else None
        tg.append((">= 1.5x faster than the PyTorch reference per image (batch 64, K 64, DiSA 50->5)", r64 >= 1.5,
                   f"torch / disa time {r64:.2f} in fp32 ({torch['threads']} threads both)"
                   + (f"; **{rb:.2f} with --precision bf16** (opt-in; {'met' if rb >= 1.5 else 'not met'} there)"
                      if rb is not None else "")
                   + f"; batch 1: {tk[1]['ratio_disa']:.2f} at K 64, {ratio:.2f} in the real K 4 run"
                   + (f" ({ratio1:.2f} at 1 thread)" if ratio1 is not None else "")))
    # The median share of the batch-64 row and its repeats, each against its own peak.
    fts = [(bt["gflops_transformer"], bt["local_peak_gflops"])]
    for rep in (2, 3):
        f = os.path.join(R, f"mar_base_b64_rep{rep}.json")
        if os.path.exists(f):
            fts.append((load(f)["extrapolate"]["per_image"]["gflops_transformer"], local(f"mar_base_b64_rep{rep}")))
    shares = sorted(pct(g, p) for g, p in fts)
    ft = shares[len(shares) // 2] if len(shares) % 2 else 0.5 * (shares[len(shares) // 2 - 1] + shares[len(shares) // 2])
    out["fp32_transformer_b64"] = {"pairs": [{"gflops": g, "peak": p, "pct": pct(g, p)} for g, p in fts], "median_pct": ft}
    tg.append(("fp32 transformer >= 90% of the sgemm peak (batch 64)", ft >= 90,
               f"{ft:.1f}% median of {len(fts)} (peak, pass) pairs: "
               + ", ".join(f"{pct(g, p):.1f}% ({g:.1f} of {p:.1f} GFLOPS)" for g, p in fts)))
    if bf:
        bt16 = pct(bf["gflops_transformer"], bf["local_peak_gflops"])
        tg.append(("bf16 transformer >= 60% of the bf16 matmul peak (batch 64)", bt16 >= 60,
                   f"{bt16:.0f}% ({bf['gflops_transformer']:.1f} of {bf['local_peak_gflops']:.1f} GFLOPS, ISA {bf['isa']})"))
        tg.append(("bf16 end to end >= 50% of the bf16 matmul peak (sample + decode + features, batch 64)",
                   bf["end_to_end_pct_peak"] >= 50,
                   f"{bf['end_to_end_pct_peak']:.0f}% ({bf['end_to_end_gflops']:.1f} GFLOPS)"))
    worst = max(gen_over.values()) if gen_over else 1
    tg.append(("scheduling / IO overhead < 2% of wall in disa-gen", worst < 0.02,
               ", ".join(f"{k}: {100 * v:.1f}%" for k, v in gen_over.items())))
    over100 = [k for k, r in out["mar_base"].items()
               if max(r["end_to_end_pct_peak"], pct(r["gflops_head"], r["local_peak_gflops"]),
                      pct(r["gflops_transformer"], r["local_peak_gflops"])) > 100]
    md.append("\n## Targets\n")
    if over100:
        def label(k):
            m = k.split("_")
            return f"batch {m[1]}" + (f" ({m[3]} thread{'s' if m[3] != '1' else ''})" if len(m) > 3 else "")
        md.append(f"**Caution:** rows above 100% of the sgemm peak measured before them: "
                  f"{', '.join(label(k) for k in over100)}. The machine got faster between the peak measurement and the section "
                  "(another job's load dropped), so those percentages are not reliable"
                  + (", and the verdicts below rest on one of them. Compare several runs.\n" if "batch_64" in over100
                     else "; the verdicts below rest on batch 64, which is not among them.\n"))
        out["peak_drift_warning"] = over100
    md.append("| target | status | numbers |")
    md.append("|---|---|---|")
    for name, ok, nums in tg:
        out["targets"][name] = {"met": bool(ok), "numbers": nums}
        md.append(f"| {name} | {'met' if ok else 'not met'} | {nums} |")
    png = os.path.splitext(a.out_md)[0] + ".png"
    if chart(out, png):
        md.append(f"\n![share of peak per phase]({os.path.basename(png)})")
    with open(a.out_json, "w") as f:
        json.dump(out, f, indent=1)
    with open(a.out_md, "w") as f:
        f.write("\n".join(md) + "\n")


def chart_rows(out):
    """(label, transformer %, head %, end to end %) per MAR-B row of the report, each against
    the peak it is quoted against in the tables."""
    rows = []
    for key, r in out.get("mar_base", {}).items():
        pk = r.get("local_peak_gflops") or out.get("peak_gflops")
        if not pk:
            continue
        parts = key.split("_")
        label = f"b{parts[1]}" + (f" {parts[3]}t" if len(parts) > 3 else "")
        rows.append((label, pct(r["gflops_transformer"], pk), pct(r["gflops_head"], pk), r["end_to_end_pct_peak"]))
    return rows


def chart(out, png):
    """A bar chart of % of peak per phase (gnuplot, Debian gnuplot-nox; the script is kept
    next to it as .gp). False when there is nothing to draw or gnuplot is missing."""
    import shutil
    import subprocess
    rows = chart_rows(out)
    if not rows or not shutil.which("gnuplot"):
        return False
    gp = os.path.splitext(png)[0] + ".gp"
    with open(gp, "w") as f:
        f.write("# Written by tools/bench_report.py; run `gnuplot THIS_FILE` to redraw.\n$d << EOD\n")
        for label, t, h, e in rows:
            f.write(f'"{label}" {t:.2f} {h:.2f} {e:.2f}\n')
        f.write("EOD\n")
        f.write(f"set terminal pngcairo size 900,480 noenhanced font 'sans,10' background 'white'\n"
                f"set output '{os.path.basename(png)}'\n"
                f"set title 'MAR-B, % of the sgemm peak measured before each row ({out.get('blas_core', '')})'\n"
                "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
                "set ylabel '% of peak'\nset yrange [0:*]\nset grid ytics\nset key outside right top\n"
                "set xlabel 'batch (threads)'\n"
                "plot $d using 2:xtic(1) title 'transformer', '' using 3 title 'diffusion head', "
                "'' using 4 title 'end to end'\n")
    r = subprocess.run(["gnuplot", os.path.basename(gp)], cwd=os.path.dirname(os.path.abspath(png)),
                       capture_output=True, text=True)
    return r.returncode == 0 and os.path.exists(png)


def xar_report(R, out, md, local):
    """xAR-B rows: per image at the official K (the model's 4 groups), the official constant
    40 flow steps against DiSA 50->15, summed from the timed call shapes of disa-bench
    --extrapolate; the real 8->4 run against the sum of its own shapes; xAR-L/H predicted.
    Also the 50-step constant schedule the DiSA README compares with, from the same shapes.
    Nothing when the xAR files are absent."""
    files = {bs: os.path.join(R, f"xar_base_b{bs}.json") for bs in (1, 16)}
    if not all(os.path.exists(f) for f in files.values()):
        return
    md.append("\n## xAR-B, per image at K = 4 (the model's groups, as in the official evaluation), cfg 2.7\n")
    md.append("Baseline: the official evaluation's constant 40 flow steps; DiSA 50->15 linear over the groups; "
              "\"50 const\": the schedule DiSA's README compares with. Every network-call shape of the schedules (the "
              "first call of each group and a later one) is timed and the schedules summed from them.\n")
    md.append("| batch | local sgemm peak | baseline s/img | DiSA s/img | 50 const s/img | DiSA GFLOPS (% peak) | "
              "DiSA speedup vs baseline measured / predicted | vs 50 const measured / predicted |")
    md.append("|---|---|---|---|---|---|---|---|")
    for bs, f in files.items():
        j = load(f)
        e = j["extrapolate"]
        pk = local(f"xar_base_b{bs}")
        first = {c["step"]: c for c in e["calls"] if c["first"]}
        later = {c["step"]: c for c in e["calls"] if not c["first"]}
        t50 = sum(first[k]["s"] + 49 * later[k]["s"] for k in first) / bs
        f50 = sum(first[k]["flops"] + 49 * later[k]["flops"] for k in first) / bs
        fi = j["flops_per_image"]["transformer"]
        pi, bp = e["per_image"], e["baseline_per_image"]
        row = {"local_peak_gflops": pk, "baseline_s_per_image": bp["t_total"], "disa_s_per_image": pi["t_total"],
               "const50_s_per_image": t50, "gflops_disa": pi["gflops"], "gflops_baseline": bp["gflops"],
               "disa_pct_peak": pct(pi["gflops"], pk), "speedup_measured": e["speedup_measured"],
               "speedup_predicted": e["speedup_predicted"], "speedup_vs_50_measured": t50 / pi["t_total"],
               "speedup_vs_50_predicted": f50 / fi, "calls": e["calls"]}
        if "run_check" in e:
            row["run_check"] = e["run_check"]
        out.setdefault("xar_base", {})[f"batch_{bs}"] = row
        md.append(f"| {bs} | {pk:.0f} | {bp['t_total']:.1f} | {pi['t_total']:.1f} | {t50:.1f} | {pi['gflops']:.1f} "
                  f"({pct(pi['gflops'], pk):.0f}%) | {e['speedup_measured']:.2f}x / {e['speedup_predicted']:.2f}x | "
                  f"{t50 / pi['t_total']:.2f}x / {f50 / fi:.2f}x |")
    j1 = load(files[1])
    fl, fb = j1["flops_per_image"], j1["baseline_flops_per_image"]
    md.append(f"\nFLOPs per image (analytic, equal to the engine's count): DiSA {fl['transformer'] / 1e12:.2f} T "
              f"({fl['calls']} network calls per batch, {fl['nfe_per_token']:.2f} flow steps per token) vs baseline "
              f"{fb['transformer'] / 1e12:.2f} T ({fb['calls']} calls); KL-16 decode {fl['decode'] / 1e9:.0f} G and "
              f"Inception {fl['features'] / 1e9:.1f} G as for MAR.")
    run, chk = j1.get("run"), j1["extrapolate"].get("run_check")
    if run and chk:
        md.append(f"\nReal sampler, batch 1, {run['flow_upper_steps']}->{run['flow_lower_steps']} flow steps: "
                  f"{run['wall_s']:.2f} s, FLOPs counted = FLOP model: {run['model_equal']}; the sum of its call shapes "
                  f"gave {chk['extrapolated_s']:.2f} s (measured / extrapolated {chk['measured_s'] / chk['extrapolated_s']:.3f}).")
        md.append("\n| group | flow steps | cfg scale | s | s / flow step | GFLOPS |")
        md.append("|---|---|---|---|---|---|")
        for st in run["steps"]:
            md.append(f"| {st['step']} | {st['flow_steps']} | {st['cfg']:.3f} | {st['t']:.2f} | "
                      f"{st['t'] / st['flow_steps']:.3f} | {st['gflops']:.1f} |")
        out["xar_base"]["run_b1"] = run
    pred = {}
    md.append("")
    for p, name in (("xar_large", "xAR-L (cfg 2.3)"), ("xar_huge", "xAR-H (cfg 2.2)")):
        f = os.path.join(R, f"{p}_flops.json")
        if os.path.exists(f):
            j = load(f)
            pred[p] = {"speedup_predicted": j["predicted_speedup"]["sampling"],
                       "disa_tflops_per_image": j["flops_per_image"]["transformer"] / 1e12,
                       "baseline_tflops_per_image": j["baseline_flops_per_image"]["transformer"] / 1e12}
            md.append(f"- {name}, DiSA 50->15 vs the official 50 constant flow steps: {pred[p]['disa_tflops_per_image']:.1f} "
                      f"vs {pred[p]['baseline_tflops_per_image']:.1f} TFLOP per image, predicted speedup "
                      f"{pred[p]['speedup_predicted']:.2f}x.")
    if pred:
        out["xar_predicted"] = pred


if __name__ == "__main__":
    main()
