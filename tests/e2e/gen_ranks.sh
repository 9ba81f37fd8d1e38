#!/bin/sh
# disa-gen on 1, 2 and 3 ranks writes byte-identical images, the ledger, run.json,
# summary.json and the summary table; with metrics, the numbers are identical too.
# Every run has one OpenBLAS thread per rank: some OpenBLAS kernel sets (Haswell's)
# round differently at different thread counts, so identity holds per core type and
# threads per rank (README, "Generating images").
set -eu
. tests/e2e/lib.inc
for np in 1 2 3; do
    gen $np jobs/tiny-test.json --output_dir "$T/np$np" --threads 1 > "$T/out$np" 2>&1 || { cat "$T/out$np"; fail "np $np failed"; }
    check_complete "$T/np$np" 20
    [ "$(wc -l < "$T/np$np/manifest")" = 7 ] || fail "np $np: manifest should list 7 units"
    [ "$(sort -u "$T/np$np/manifest" | wc -l)" = 7 ] || fail "np $np: a unit is listed twice"
    grep -q '"images_done": 20' "$T/np$np/summary.json" || fail "np $np: summary.json"
    grep -qE '"world_size":[[:space:]]*'$np "$T/np$np/run.json" || fail "np $np: run.json world size"
    grep -qE '^tiny-test +20 ' "$T/out$np" || fail "np $np: no summary table row"
done
same_pngs "$T/np1" "$T/np2"
same_pngs "$T/np1" "$T/np3"
# Determinism report: with features and a reference, 1 and 3 ranks give byte-identical
# PNGs and identical summary metrics (timing aside).
M="--features models/fmnist-classifier.safetensors --reference models/fmnist-test-stats.npz --num_images 60 --eval_bsz 4 --threads 1"
gen 1 jobs/tiny-test.json --output_dir "$T/m1" $M > /dev/null 2>&1 || fail "metrics run on 1 rank"
gen 3 jobs/tiny-test.json --output_dir "$T/m3" $M > /dev/null 2>&1 || fail "metrics run on 3 ranks"
same_pngs "$T/m1" "$T/m3"
m1=$(grep -o '"metrics": {.*"seconds"' "$T/m1/summary.json" | sed 's/, "seconds"//')
m3=$(grep -o '"metrics": {.*"seconds"' "$T/m3/summary.json" | sed 's/, "seconds"//')
[ -n "$m1" ] && [ "$m1" = "$m3" ] || fail "metrics differ between 1 and 3 ranks: '$m1' vs '$m3'"
echo "1 vs 3 ranks: identical PNGs and $m1"

# The recipe travels in each PNG's tEXt chunk.
grep -q 'diff_sampler=disa' "$T/np1/00007.png" || fail "PNG lacks the sampling recipe"
# A second run finds everything done and computes nothing.
gen 2 jobs/tiny-test.json --output_dir "$T/np2" --threads 1 > "$T/again" 2>&1 || fail "rerun failed"
grep -q '0 units (0 images) to do' "$T/again" || { cat "$T/again"; fail "rerun should have nothing to do"; }
echo ok
