#!/bin/sh
# disa-gen on 1, 2 and 3 ranks writes byte-identical images, the ledger, run.json,
# summary.json and the summary table.
set -eu
. tests/e2e/lib.inc
for np in 1 2 3; do
    gen $np jobs/tiny-test.json --output_dir "$T/np$np" > "$T/out$np" 2>&1 || { cat "$T/out$np"; fail "np $np failed"; }
    check_complete "$T/np$np" 20
    [ "$(wc -l < "$T/np$np/manifest")" = 7 ] || fail "np $np: manifest should list 7 units"
    [ "$(sort -u "$T/np$np/manifest" | wc -l)" = 7 ] || fail "np $np: a unit is listed twice"
    grep -q '"images_done": 20' "$T/np$np/summary.json" || fail "np $np: summary.json"
    grep -qE '"world_size":[[:space:]]*'$np "$T/np$np/run.json" || fail "np $np: run.json world size"
    grep -qE '^tiny-test +20 ' "$T/out$np" || fail "np $np: no summary table row"
done
same_pngs "$T/np1" "$T/np2"
same_pngs "$T/np1" "$T/np3"
# The recipe travels in each PNG's tEXt chunk.
grep -q 'diff_sampler=disa' "$T/np1/00007.png" || fail "PNG lacks the sampling recipe"
# A second run finds everything done and computes nothing.
gen 2 jobs/tiny-test.json --output_dir "$T/np2" > "$T/again" 2>&1 || fail "rerun failed"
grep -q '0 units (0 images) to do' "$T/again" || { cat "$T/again"; fail "rerun should have nothing to do"; }
echo ok
