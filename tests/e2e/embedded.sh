#!/bin/sh
# The embedded models load and sample as shipped (models/README.md): the Fashion-MNIST MAR
# through disa-sample, scored by the embedded classifier through disa-stats. A change to a
# loader that refused them would break make demo; this catches it in make test.
set -eu
. tests/e2e/lib.inc
$B/disa-sample --model models/fmnist-mar.safetensors --class 7 --num_images 2 --num_iter 2 --diff_sampler DiSA \
    --diff_upper_steps 5 --diff_lower_steps 5 --threads 1 --out "$T/s" > "$T/s.log" 2>&1 || { cat "$T/s.log"; fail "disa-sample on the embedded MAR"; }
[ -f "$T/s/00000.png" ] && [ -f "$T/s/00001.png" ] || fail "no PNGs"
$B/disa-stats --fid "$T/s" --ref models/fmnist-test-stats.npz --net models/fmnist-classifier.safetensors --threads 1 \
    > "$T/f.log" 2>&1 || { cat "$T/f.log"; fail "disa-stats with the embedded classifier"; }
grep -q "^FID " "$T/f.log" || fail "no FID line"
echo "ok: embedded MAR sampled, embedded classifier scored it"
