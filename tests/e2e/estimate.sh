#!/bin/sh
# disa-gen --estimate: the cost of a job from the FLOP model and a short calibration on
# this CPU, printed by rank 0; nothing is written and the run does not start.
set -eu
. tests/e2e/lib.inc
cat > "$T/e.json" <<JSON
{"name": "e", "model": "models/tiny-test.safetensors", "output_dir": "$T/out", "num_images": 100000, "eval_bsz": 10,
 "features": "models/fmnist-classifier.safetensors", "sampling": {"num_iter": 4, "diff_upper_steps": 20}}
JSON
gen 2 "$T/e.json" --estimate --cores 48,4800 --threads 1 > "$T/est.log" 2>&1 || { cat "$T/est.log"; fail "--estimate failed"; }
[ ! -e "$T/out" ] || fail "--estimate created the output folder"
! ls -a "$T" | grep -q disa-estimate || fail "--estimate left its PNG timing folder: $(ls -a "$T")"
for pat in '^e: 100000 images, fp32, calibrated on 1 BLAS thread ' '^  sampling ' '^  PNG files ' '^  features ' '^  total ' \
           'on     2 cores (here)' 'on    48 cores' 'on  4800 cores'; do
    grep -q -- "$pat" "$T/est.log" || { cat "$T/est.log"; fail "no line matching '$pat'"; }
done
# Two ranks of one thread: 2 cores here. The wall time on 48 cores is the core-seconds of
# all images over 48.
awk '/core-seconds per image/ {cs = $(NF-3); sub(/\(/, "", cs)}
     /on    48 cores/ {
         # "12.3 s wall" below 100 s, "H:MM:SS wall" above.
         for (i = 1; i <= NF; i++) if ($i == "wall,") k = i
         if ($(k-1) == "s") w = $(k-2)
         else { n = split($(k-1), p, ":"); w = p[1] * 3600 + p[2] * 60 + p[3] } }
     END { if (cs == "" || w == "") exit 1;
           want = cs * 100000 / 48;
           if (w < want * 0.95 - 1 || w > want * 1.05 + 1) { print "wall", w, "want", want; exit 1 } }' \
    "$T/est.log" || { cat "$T/est.log"; fail "wall on 48 cores is not core-seconds x images / 48"; }
# Bad --cores values and a value given to --estimate: exit 2, one message, nothing written.
for bad in "--cores 0" "--cores 48,x" "--cores=" "--estimate=1"; do
    set +e
    # shellcheck disable=SC2086
    "$B/disa-gen" "$T/e.json" --estimate $bad > "$T/bad.log" 2>&1
    rc=$?
    set -e
    [ $rc = 2 ] || { cat "$T/bad.log"; fail "'$bad' exited $rc, expected 2"; }
    [ "$(wc -l < "$T/bad.log")" = 1 ] || { cat "$T/bad.log"; fail "'$bad': expected one message"; }
    [ ! -e "$T/out" ] || fail "'$bad' created the output folder"
done
echo "ok: --estimate"
