#!/bin/sh
# A sweep ends with comparison.png (and the gnuplot script with its data) in the folder
# its variants share: FID and class accuracy against time and head steps, one marker per
# variant, the first variant as the reference.
set -eu
. tests/e2e/lib.inc
cat > "$T/sw.json" <<JSON
{"name": "sw", "model": "models/tiny-test.safetensors", "output_dir": "$T/out", "num_images": 20, "eval_bsz": 10,
 "features": "models/fmnist-classifier.safetensors", "reference": "models/fmnist-test-stats.npz",
 "sampling": {"num_iter": 4},
 "variants": [{"name": "base", "sampling": {"diff_sampler": "DiSA", "diff_upper_steps": 20, "diff_lower_steps": 20,
                                            "diff_annealing_strategy": "constant"}},
              {"name": "disa", "sampling": {"diff_sampler": "DiSA", "diff_upper_steps": 20, "diff_lower_steps": 5}}]}
JSON
gen 2 "$T/sw.json" --threads 1 > "$T/sw.log" 2>&1 || { cat "$T/sw.log"; fail "sweep failed"; }
grep -q "comparison plot: .*/out/comparison.png" "$T/sw.log" || { cat "$T/sw.log"; fail "no comparison plot logged"; }
head -c 8 "$T/out/comparison.png" | od -An -c | grep -q 'P   N   G' || fail "comparison.png is not a PNG"
grep -q '"base"' "$T/out/comparison.gp" && grep -q '"disa"' "$T/out/comparison.gp" || fail "comparison.gp lacks the variants"
# Three panels (FID/time, FID/steps, accuracy/time) of 640 px: 1920 px wide.
w=$(od -An -tu1 -j16 -N4 "$T/out/comparison.png" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
[ "$w" = 1920 ] || fail "comparison.png is $w px wide, expected 1920 (three panels)"
! ls "$T/out" | grep -q 'tmp' || fail "temporary files left: $(ls "$T/out")"
echo "ok: $T/out/comparison.png, $w px"
