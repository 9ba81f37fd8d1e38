#!/bin/sh
# make bench: speed measurements against the analytic FLOP model (DESIGN §10). Never
# part of make test. Writes results/bench/<date>.json and results/bench/<date>.md
# (raw per-program JSON in results/bench/<date>.raw/) and prints the table.
#
# What runs (about 19 minutes on 2 cores; every number is a median, the machine
# may be shared, so read them with the load average printed at the top):
#   sgemm peak (2048^3, the current thread count) and the OpenBLAS core;
#   MAR-B random weights, CFG on, at batch 1, 8, 32 and 64 (disa-gen's default unit, where
#     the targets are read): disa-bench --extrapolate times
#     the K = 64 schedule step shape by step shape (transformer at 3 / 1 / 1 points,
#     median of 3 / 1 / 1 passes, the head at every distinct row count) and sums per
#     image for the baseline
#     (default sampler, 100 steps) and DiSA 50->5 linear: a full K = 64 run of batch 64
#     does not fit the time budget. Batch 1 also runs the real sampler at K = 4
#     (--run, per AR step) to compare with the PyTorch reference at the same settings,
#     and batch 1 is repeated at 1 thread (the second core is often busy here); batch 64
#     twice more, each after its own peak, for the fp32 transformer target's median;
#   KL-16 decode and Inception features per image (random weights);
#   disa-gen on a small MAR-B job (K = 2, DiSA 10->5, KL-16, 2 images of 1) as
#     1 rank x N threads and N ranks x 1 thread: wall, overhead share, RSS/PSS per rank;
#   MAR-B batch 64 again as N ranks x 1 thread (N disa-bench processes at once);
#   MAR-L and MAR-H at batch 1 (per step, 1 point, median of 3 passes, K = 64);
#   FlowAR-S (batch 8) and FlowAR-H (batch 1), random weights: whole runs of DiSA's
#     setting (25 -> 15 and 50 -> 15 flow steps, the README's cfg and guidance) and of
#     the baseline (25 / 50 steps at every scale), measured and predicted speedup;
#   --precision bf16 where oneDNN and AVX512_BF16 (or AMX) are there: the bf16 matmul
#     peak (oneDNN, 2048^3 and MAR-B's Linear shapes, the ISA oneDNN picks) and right
#     after it MAR-B batch 64 with bf16 decode and fp32 features, quoted as shares of that
#     peak; the error of one transformer pass and one head step against fp32; tokens
#     after a whole loop against fp32 (MAR-B shapes at K = 8, the embedded Fashion-MNIST
#     model at K = 16);
#   tools/bench_torch.py: the batch-1 K = 4 run through tools/marref (fp32), at the
#     same thread count and again at 1 thread against the 1-thread disa run; and the
#     K = 64 schedules of batch 1 and 64 timed step shape by step shape like disa's;
#   xAR-B random weights, cfg 2.7, at batch 1 and 16: every network-call shape timed, the
#     official 40 constant flow steps and DiSA 50->15 summed from them (K = the model's 4
#     groups, as in the official evaluation), batch 1 also as a real run at 8->4 steps;
#     xAR-L/H the FLOP model's predicted speedup.
# Random-weight models (several GB for MAR-H, 7.7 GB for FlowAR-H) are written once to $BENCH_WORK
# (default /tmp/disa-bench) and reused.
set -e
BUILD=${BUILD:-build}
B=$BUILD/bin
W=${BENCH_WORK:-${TMPDIR:-/tmp}/disa-bench}
PY=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
DATE=$(date -u +%Y-%m-%dT%H%M%SZ)
OUT=results/bench
RAW=$OUT/$DATE.raw
mkdir -p "$W" "$RAW"
start=$(date +%s)
step() { echo "bench: [$(( $(date +%s) - start )) s] $*"; }

step "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$B/disa-info" > "$RAW/info.txt" 2>&1
cat "$RAW/info.txt"
grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//' > "$RAW/cpu.txt" || true
cut -d' ' -f1-3 /proc/loadavg > "$RAW/load_start.txt"

step "sgemm peak"
"$B/disa-bench" --sgemm --sgemm_n 2048 --sgemm_reps 7 --threads "$THREADS" --json "$RAW/sgemm.json"
# The load of a shared machine drifts within minutes, so every section quotes its % of
# peak against an sgemm peak measured right before it (5 reps, its own thread count).
local_peak() { # name threads
    "$B/disa-bench" --sgemm --sgemm_n 2048 --sgemm_reps 5 --threads "$2" --json "$RAW/peak_$1.json" > /dev/null
    $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['sgemm']['median_gflops'])" "$RAW/peak_$1.json"
}

for p in mar_base mar_large mar_huge flowar_small flowar_huge; do
    [ -f "$W/$p.safetensors" ] || { step "writing $W/$p.safetensors"; "$B/disa-mkmodel" --preset $p --out "$W/$p.safetensors"; }
done
[ -f "$W/kl16.safetensors" ] || "$B/disa-mkmodel" --vae kl16 --out "$W/kl16.safetensors"
[ -f "$W/inception.safetensors" ] || "$B/disa-stats" --make-random-inception "$W/inception.safetensors"

DISA="--num_iter 64 --cfg 2.9 --cfg_schedule linear --diff_sampler DiSA --diff_upper_steps 50 --diff_lower_steps 5 --diff_annealing_strategy linear"
BASE="--baseline_sampler default --baseline_steps 100"

step "MAR-B batch 1: real sampler at K 4 (per step), K 64 extrapolation, decode, features"
P=$(local_peak mar_base_b1 "$THREADS")
# shellcheck disable=SC2086
"$B/disa-bench" --model "$W/mar_base.safetensors" $DISA $BASE --batch 1 --threads "$THREADS" --peak "$P" \
    --run --run_iter 4 --per-step --extrapolate --t_points 3 --t_reps 3 \
    --vae "$W/kl16.safetensors" --features "$W/inception.safetensors" --json "$RAW/mar_base_b1.json"
step "MAR-B batch 1 at 1 thread: K 64 extrapolation (the second core is shared)"
P=$(local_peak mar_base_b1_t1 1)
# shellcheck disable=SC2086
"$B/disa-bench" --model "$W/mar_base.safetensors" $DISA $BASE --batch 1 --threads 1 --peak "$P" \
    --run --run_iter 4 --extrapolate --t_points 1 --t_reps 3 --json "$RAW/mar_base_b1_t1.json"
# Batch 64 is disa-gen's default unit (eval_bsz, as in main_mar.py): the targets are read there.
for bs in 8 32 64; do
    step "MAR-B batch $bs: K 64 extrapolation"
    P=$(local_peak mar_base_b$bs "$THREADS")
    # shellcheck disable=SC2086
    "$B/disa-bench" --model "$W/mar_base.safetensors" $DISA $BASE --batch $bs --threads "$THREADS" --peak "$P" \
        --extrapolate --t_points 1 --json "$RAW/mar_base_b$bs.json"
done
# The fp32 transformer target is read against a peak measured seconds before a ~50 s pass,
# and a shared machine's speed drifts between the two: two more (peak, pass) pairs, and the
# report takes the median share of the three.
for rep in 2 3; do
    step "MAR-B batch 64: K 64 extrapolation, repeat $rep of 3"
    P=$(local_peak mar_base_b64_rep$rep "$THREADS")
    # shellcheck disable=SC2086
    "$B/disa-bench" --model "$W/mar_base.safetensors" $DISA $BASE --batch 64 --threads "$THREADS" --peak "$P" \
        --extrapolate --t_points 1 --json "$RAW/mar_base_b64_rep$rep.json"
done
if [ "$THREADS" -gt 1 ]; then
    # The layout docs/performance.md recommends: one rank per core. N processes with one
    # thread each time the same batch-64 schedule at once, as N disa-gen ranks would run.
    step "MAR-B batch 64 as $THREADS ranks x 1 thread: $THREADS disa-bench processes at once"
    pids=""
    r=0
    while [ $r -lt "$THREADS" ]; do
        # shellcheck disable=SC2086
        "$B/disa-bench" --model "$W/mar_base.safetensors" $DISA $BASE --batch 64 --threads 1 \
            --extrapolate --t_points 1 --json "$RAW/mar_base_b64_rank$r.json" > "$RAW/mar_base_b64_rank$r.log" 2>&1 &
        pids="$pids $!"
        r=$((r + 1))
    done
    for p in $pids; do wait "$p"; done
fi
for p in mar_large mar_huge; do
    step "$p batch 1: K 64 extrapolation"
    cfgv=3.0; [ $p = mar_huge ] && cfgv=3.2
    P=$(local_peak ${p}_b1 "$THREADS")
    # shellcheck disable=SC2086
    "$B/disa-bench" --model "$W/$p.safetensors" $DISA --cfg $cfgv $BASE --batch 1 --threads "$THREADS" --peak "$P" \
        --extrapolate --t_points 1 --t_reps 3 --json "$RAW/${p}_b1.json"
done

# FlowAR: five scales, so the real sampler runs whole schedules (disa-bench --run runs
# the setting and its baseline one after the other on the same weights).
step "FlowAR-S batch 8: DiSA 25->15 vs 25 flow steps, whole runs"
P=$(local_peak flowar_small "$THREADS")
"$B/disa-bench" --model "$W/flowar_small.safetensors" --flow_upper_steps 25 --flow_lower_steps 15 --cfg 4.2 \
    --guidance 0.9 --batch 8 --threads "$THREADS" --peak "$P" --run --json "$RAW/flowar_small.json"
step "FlowAR-H batch 1: DiSA 50->15 vs 50 flow steps, whole runs"
P=$(local_peak flowar_huge "$THREADS")
"$B/disa-bench" --model "$W/flowar_huge.safetensors" --flow_upper_steps 50 --flow_lower_steps 15 --cfg 2.4 \
    --guidance 0.7 --batch 1 --threads "$THREADS" --peak "$P" --run --json "$RAW/flowar_huge.json"

# --precision bf16 (oneDNN, AVX512_BF16): speed at batch 64 and the tokens of a short
# MAR-B loop against fp32 (fp32 equals the PyTorch reference to ~4e-7, tests/parity).
if "$B/disa-bench" --model mar_base --precision bf16 > "$RAW/bf16_check.txt" 2>&1; then
    step "bf16: matmul peak; MAR-B batch 64 K 64 extrapolation; tokens after a K 8 loop vs fp32"
    # The ISA oneDNN picks, in its own words (ONEDNN_VERBOSE), from a small product.
    ONEDNN_VERBOSE=1 "$B/disa-bench" --bf16_peak --sgemm_n 256 --sgemm_reps 1 2>&1 |
        grep '^onednn_verbose,info' > "$RAW/onednn_verbose.txt" || true
    # shellcheck disable=SC2086
    "$B/disa-bench" --model mar_base $DISA --batch 64 --bf16_peak --sgemm_n 2048 --sgemm_reps 9 --threads "$THREADS" \
        --json "$RAW/bf16_peak.json"
    # The peak: the best median of 2048^3 and MAR-B's Linear shapes in this run.
    P=$($PY -c "import json,sys; j=json.load(open(sys.argv[1])); print(j.get('bf16_peak_best', {}).get('gflops') or j['bf16_peak']['median_gflops'])" "$RAW/bf16_peak.json")
    # shellcheck disable=SC2086
    "$B/disa-bench" --model "$W/mar_base.safetensors" $DISA $BASE --precision bf16 --batch 64 --threads "$THREADS" \
        --peak "$P" --extrapolate --t_points 1 --vae "$W/kl16.safetensors" --features "$W/inception.safetensors" \
        --json "$RAW/mar_base_b64_bf16.json"
    # One evaluation of each network in both precisions (MAR-B shapes, random weights).
    "$B/disa-bench" --model "$W/mar_base.safetensors" --cfg 2.9 --batch 2 --threads "$THREADS" --bf16_check \
        --json "$RAW/bf16_check.json"
    # Tokens after the whole loop: MAR-B shapes (random weights: its tokens reach 1e4 and
    # the loop amplifies any difference) and the trained embedded model.
    for case in "mar_base|$W/mar_base.safetensors|--class 207 --num_images 2 --num_iter 8 --cfg 2.9" \
                "fmnist|models/fmnist-mar.safetensors|--class 3 --num_images 20 --num_iter 16 --cfg 3.0"; do
        name=${case%%|*}; rest=${case#*|}; model=${rest%%|*}; flags=${rest#*|}
        for pr in fp32 bf16; do
            # shellcheck disable=SC2086
            "$B/disa-sample" --model "$model" $flags --seed 3 --diff_sampler DiSA --diff_upper_steps 50 \
                --diff_lower_steps 5 --precision $pr --threads "$THREADS" --out "$RAW/tokens_${name}_$pr" \
                > "$RAW/tokens_${name}_$pr.log" 2>&1
        done
        $PY - "$RAW/tokens_${name}_fp32/tokens.npy" "$RAW/tokens_${name}_bf16/tokens.npy" "$RAW/bf16_tokens_$name.json" <<'PY'
import json, sys
import numpy as np
a, b = np.load(sys.argv[1]).astype(np.float64), np.load(sys.argv[2]).astype(np.float64)
d = np.abs(a - b)
r = {"images": int(a.shape[0]), "max_abs": float(d.max()), "max_abs_fp32": float(np.abs(a).max()),
     "normwise": float(d.max() / np.abs(a).max()), "rms": float(np.sqrt((d ** 2).mean())),
     "rms_fp32": float(np.sqrt((a ** 2).mean()))}
json.dump(r, open(sys.argv[3], "w"), indent=1)
print("bf16 tokens vs fp32:", sys.argv[3], r)
PY
        rm -rf "$RAW/tokens_${name}_fp32" "$RAW/tokens_${name}_bf16"
    done
else
    step "bf16 not available here: $(cat "$RAW/bf16_check.txt")"
fi

step "PyTorch reference, the batch-1 K 4 run"
OMP_WAIT_POLICY=PASSIVE $PY tools/bench_torch.py --model "$W/mar_base.safetensors" --threads "$THREADS" \
    --batch 1 --num_iter 4 --cfg 2.9 --diff_sampler disa --upper 50 --lower 5 --json "$RAW/torch.json"
if [ "$THREADS" != 1 ]; then
    step "PyTorch reference at 1 thread (against the 1-thread disa run)"
    OMP_WAIT_POLICY=PASSIVE $PY tools/bench_torch.py --model "$W/mar_base.safetensors" --threads 1 \
        --batch 1 --num_iter 4 --cfg 2.9 --diff_sampler disa --upper 50 --lower 5 --json "$RAW/torch_t1.json"
fi

step "PyTorch reference at the K 64 step shapes of batch 1 and batch 64 (extrapolated like disa's)"
for bs in 1 64; do
    OMP_WAIT_POLICY=PASSIVE $PY tools/bench_torch.py --model "$W/mar_base.safetensors" --threads "$THREADS" \
        --cfg 2.9 --extrapolate "$RAW/mar_base_b$bs.json" --json "$RAW/torch_b${bs}_k64.json"
done

step "disa-gen: 1 rank x $THREADS threads vs $THREADS ranks x 1 thread"
cat > "$RAW/gen-job.json" <<JOB
{"name": "bench-mar-b", "model": "$W/mar_base.safetensors", "vae": "$W/kl16.safetensors",
 "output_dir": "$RAW/gen", "num_images": 2, "eval_bsz": 1, "seed": 1, "labels": [1, 2],
 "sampling": {"num_iter": 2, "cfg": 2.9, "cfg_schedule": "linear", "temperature": 1.0, "diff_sampler": "DiSA",
              "diff_upper_steps": 10, "diff_lower_steps": 5, "diff_annealing_strategy": "linear"}}
JOB
sh tools/mpirun.sh 1 "$B/disa-gen" "$RAW/gen-job.json" --output_dir "$RAW/gen-1x$THREADS" --threads "$THREADS" \
    --restart --quiet > "$RAW/gen-1x$THREADS.log" 2>&1
sh tools/mpirun.sh "$THREADS" "$B/disa-gen" "$RAW/gen-job.json" --output_dir "$RAW/gen-${THREADS}x1" --threads 1 \
    --restart --quiet > "$RAW/gen-${THREADS}x1.log" 2>&1
cp "$RAW/gen-1x$THREADS/summary.json" "$RAW/gen_1x$THREADS.json"
cp "$RAW/gen-${THREADS}x1/summary.json" "$RAW/gen_${THREADS}x1.json"
rm -rf "$RAW/gen-1x$THREADS" "$RAW/gen-${THREADS}x1"

# xAR-B (random weights, cfg 2.7 linear). Its AR steps are the model's 4 groups (the
# official K), each a number of flow steps that are whole network calls: every call
# shape is timed and the official evaluation's schedule (a constant 40 flow steps) and
# DiSA 50->15 are summed from them, at batch 1 and at the ImageNet job's unit of 16.
# Batch 1 also runs the real sampler at 8->4 flow steps, checked against the sum of its
# own schedule. xAR-L/H: the FLOP model's prediction only (presets, no weights).
[ -f "$W/xar_base.safetensors" ] || { step "writing $W/xar_base.safetensors"; "$B/disa-mkmodel" --preset xar_base --out "$W/xar_base.safetensors"; }
XAR="--cfg 2.7 --cfg_schedule linear --flow_upper_steps 50 --flow_lower_steps 15 --baseline_steps 40"
step "xAR-B batch 1: call shapes (median of 3), the real sampler at 8->4 flow steps"
P=$(local_peak xar_base_b1 "$THREADS")
# shellcheck disable=SC2086
"$B/disa-bench" --model "$W/xar_base.safetensors" $XAR --batch 1 --threads "$THREADS" --peak "$P" \
    --run --run_flow_upper_steps 8 --run_flow_lower_steps 4 --per-step --extrapolate --t_reps 3 \
    --json "$RAW/xar_base_b1.json"
step "xAR-B batch 16: call shapes (median of 1)"
P=$(local_peak xar_base_b16 "$THREADS")
# shellcheck disable=SC2086
"$B/disa-bench" --model "$W/xar_base.safetensors" $XAR --batch 16 --threads "$THREADS" --peak "$P" \
    --extrapolate --t_reps 1 --json "$RAW/xar_base_b16.json"
for p in xar_large:2.3 xar_huge:2.2; do
    "$B/disa-bench" --model "${p%%:*}" --cfg "${p#*:}" --flow_upper_steps 50 --flow_lower_steps 15 --baseline_steps 50 \
        --json "$RAW/${p%%:*}_flops.json" > /dev/null
done

cut -d' ' -f1-3 /proc/loadavg > "$RAW/load_end.txt"
step "report"
$PY tools/bench_report.py "$RAW" "$OUT/$DATE.json" "$OUT/$DATE.md" --threads "$THREADS" --seconds $(( $(date +%s) - start ))
cat "$OUT/$DATE.md"
step "done: $OUT/$DATE.json, $OUT/$DATE.md"
