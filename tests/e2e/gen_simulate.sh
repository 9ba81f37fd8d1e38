#!/bin/sh
# disa-gen --simulate on 32 oversubscribed ranks: the real scheduler, ledger, feature
# shards and summary with every unit's sampling replaced by a wait. No PNGs; run.json
# and summary.json say the folder is simulated; a real run refuses to resume it; a
# second simulation finds everything done. A job with fewer units than ranks is warned
# about before any unit is handed out.
# Starting 32 processes costs about a second each on a loaded 2-core machine: one run of
# 32 ranks, the rest on 1 or 2.
set -eu
. tests/e2e/lib.inc
F="--features models/fmnist-classifier.safetensors --reference models/fmnist-test-stats.npz"
# 100 units of 4 images, about 20 ms each: 4 rounds on 32 ranks.
gen 32 jobs/tiny-test.json --output_dir "$T/s" --num_images 400 --eval_bsz 4 --threads 1 --simulate 0.005:0.2 \
    $F > "$T/out" 2>&1 || { cat "$T/out"; fail "simulation on 32 ranks failed"; }
grep -q '100 units on 32 ranks: 4 rounds, the last with 4 units; with equal unit times the ranks are busy at most 78.1%' \
    "$T/out" || { cat "$T/out"; fail "no rounds line"; }
! grep -q 'WARN' "$T/out" || { cat "$T/out"; fail "warning in a run with more units than ranks"; }
grep -q 'done: 400 images' "$T/out" || fail "not done"
grep -qE 'scheduler: [0-9]+ messages .* ledger 100 lines, [0-9]+ fsyncs' "$T/out" || { cat "$T/out"; fail "no scheduler line"; }
grep -q 'simulated (disa-gen --simulate): no images' "$T/out" || fail "the summary table does not say simulated"
! ls "$T/s" | grep -q '\.png$' || fail "a simulation wrote PNGs"
[ "$(wc -l < "$T/s/manifest")" = 100 ] || fail "manifest should list 100 units"
[ "$(sort -u "$T/s/manifest" | wc -l)" = 100 ] || fail "a unit is listed twice"
[ "$(ls "$T/s/features" | grep -c '\.safetensors$')" = 100 ] || fail "feature shards: $(ls "$T/s/features" | wc -l)"
grep -q '"simulated":[[:space:]]*"disa-gen --simulate 0.005:0.2' "$T/s/run.json" || fail "run.json: simulated"
grep -qE '"world_size":[[:space:]]*32' "$T/s/run.json" || fail "run.json: world size"
grep -q '"images_done": 400' "$T/s/summary.json" || fail "summary.json: images_done"
grep -q '"metrics_of_random_features"' "$T/s/summary.json" || fail "summary.json: metrics not named random"
! grep -q '"metrics":' "$T/s/summary.json" || fail "summary.json: random metrics under the real name"
grep -q '"scheduler"' "$T/s/summary.json" || fail "summary.json: no scheduler member"
grep -qE '"ranks":[[:space:]]*32,' "$T/s/summary.json" || fail "summary.json: scheduler ranks"
grep -qE '"ledger_lines":[[:space:]]*100,' "$T/s/summary.json" || fail "summary.json: scheduler ledger lines"

# A real run refuses the simulated folder (exit 2, nothing written) and says why.
st=0
gen 1 jobs/tiny-test.json --output_dir "$T/s" --num_images 400 --eval_bsz 4 --threads 1 > "$T/real" 2>&1 || st=$?
[ "$st" = 2 ] || { cat "$T/real"; fail "a real run on a simulated folder: exit $st, expected 2"; }
grep -q 'holds a simulated run (disa-gen --simulate: no images); a real run does not resume it' "$T/real" \
    || { cat "$T/real"; fail "no reason given"; }
! ls "$T/s" | grep -q '\.png$' || fail "the refused real run wrote PNGs"
# The same simulation again resumes and finds nothing to do.
gen 1 jobs/tiny-test.json --output_dir "$T/s" --num_images 400 --eval_bsz 4 --threads 1 --simulate 0.005:0.2 \
    > "$T/again" 2>&1 || { cat "$T/again"; fail "second simulation failed"; }
grep -q '0 units (0 images) to do' "$T/again" || { cat "$T/again"; fail "second simulation should have nothing to do"; }

# Fewer units than ranks: 1 unit of 20 images on 2 ranks. The warning comes before any
# unit is handed out and names the idle rank and the ways out; the run still completes.
gen 2 jobs/tiny-test.json --output_dir "$T/few" --eval_bsz 20 --threads 1 --simulate 0.005 \
    > "$T/few.out" 2>&1 || { cat "$T/few.out"; fail "simulation with fewer units than ranks failed"; }
w=$(grep -n 'WARN only 1 unit for 2 ranks: 1 rank will get no unit and the run uses at most 50% of them. Run on at most 1 rank, or choose a smaller eval_bsz' "$T/few.out" | cut -d: -f1)
[ -n "$w" ] || { cat "$T/few.out"; fail "no warning for fewer units than ranks"; }
d=$(grep -n 'done: 20 images' "$T/few.out" | cut -d: -f1)
[ -n "$d" ] && [ "$w" -lt "$d" ] || { cat "$T/few.out"; fail "warning not before the work"; }
[ "$(wc -l < "$T/few/manifest")" = 1 ] || fail "few: manifest should list 1 unit"
# A real run with fewer units than ranks gets the same warning.
gen 2 jobs/tiny-test.json --output_dir "$T/few-real" --eval_bsz 20 --threads 1 > "$T/few-real.out" 2>&1 \
    || { cat "$T/few-real.out"; fail "real run with fewer units than ranks failed"; }
grep -q 'WARN only 1 unit for 2 ranks' "$T/few-real.out" || { cat "$T/few-real.out"; fail "no warning in a real run"; }
check_complete "$T/few-real" 20
echo ok
