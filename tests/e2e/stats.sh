#!/bin/sh
# disa-stats end to end: reference statistics from the Fashion-MNIST IDX test set (a
# subset) with the embedded classifier, recompute mode against them (self-FID ~ 0 in both
# forms, IS printed, precision = recall = 1), the same images as PNGs giving the same
# statistics, and the FID Inception path on a few PNGs with random weights.
set -eu
. tests/e2e/lib.inc
IDX=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
NET=models/fmnist-classifier.safetensors
[ -f "$IDX" ] || { echo "SKIP: $IDX not installed"; exit 77; }
[ -f "$NET" ] || { echo "SKIP: $NET not built yet (tools/train_fmnist_classifier.py)"; exit 77; }
S="$B/disa-stats --threads 1"

# |value of KEY in FILE| < LIMIT
small() { awk -v k="$2" -v lim="$3" '$1 == k { v = $2 < 0 ? -$2 : $2; found = 1; exit !(v < lim) } END { if (!found) exit 1 }' "$1"; }
# FILE has a line "KEY <number> ..." in the printed format
has_num() { grep -qE "^$2 +-?[0-9]+\.[0-9]{6}( |$)" "$1"; }

$S $IDX --limit 300 --net $NET --out "$T/ref.npz" --features > "$T/ref.out" 2>&1 || { cat "$T/ref.out"; fail "reference statistics"; }
grep -q 'mu, sigma of 300 images (sequential-cnn, 128-d), features, logits' "$T/ref.out" || { cat "$T/ref.out"; fail "ref summary"; }

$S --fid $IDX --limit 300 --net $NET --ref "$T/ref.npz" --prc > "$T/self.out" 2>&1 || { cat "$T/self.out"; fail "recompute mode"; }
cat "$T/self.out"
for k in FID FID_sqrtm IS_adm; do has_num "$T/self.out" $k || fail "no '$k' line in the expected format"; done
grep -qE '^IS +[0-9]+\.[0-9]{6} \+- [0-9]+\.[0-9]{6}' "$T/self.out" || fail "IS line format"
small "$T/self.out" FID 1e-6 || fail "self-FID (eigenvalue form) not ~0"
small "$T/self.out" FID_sqrtm 1e-6 || fail "self-FID (sqrtm form) not ~0"
grep -q '^precision  1.000000  recall 1.000000' "$T/self.out" || fail "self precision/recall should be 1"

# The same images through PNG files: identical statistics, so FID ~ 0 again.
$S --export-png "$T/png" $IDX --limit 300 > /dev/null || fail "export"
[ "$(ls "$T/png" | grep -c '\.png$')" = 300 ] || fail "expected 300 PNGs"
$S --fid "$T/png" --net $NET --ref "$T/ref.npz" > "$T/png.out" 2>&1 || { cat "$T/png.out"; fail "PNG folder"; }
small "$T/png.out" FID 1e-6 || { cat "$T/png.out"; fail "PNG statistics differ from IDX statistics"; }
grep -q "IS " "$T/self.out" && [ "$(grep '^IS ' "$T/self.out")" = "$(grep '^IS ' "$T/png.out")" ] || fail "IS differs between IDX and PNG"

# Distributed under mpirun: 3 ranks against the 1-rank reference give FID ~ 0 and the
# same IS (the sums only change order).
tools/mpirun.sh 3 $S --fid $IDX --limit 300 --net $NET --ref "$T/ref.npz" > "$T/mpi.out" 2>&1 || { cat "$T/mpi.out"; fail "mpirun -np 3"; }
small "$T/mpi.out" FID 1e-6 || { cat "$T/mpi.out"; fail "3-rank statistics differ from 1-rank statistics"; }
[ "$(grep '^IS ' "$T/self.out")" = "$(grep '^IS ' "$T/mpi.out")" ] || fail "IS differs between 1 and 3 ranks"

# A different subset is far away.
$S --fid $IDX --limit 200 --net $NET --ref "$T/ref.npz" > "$T/other.out" 2>&1 || fail "subset"
awk '$1 == "FID" { exit !($2 > 0.01) }' "$T/other.out" || { cat "$T/other.out"; fail "a 200-image subset should not match"; }

# FID Inception path (random weights: format only) on 12 upsampled 28x28 PNGs.
$S --make-random-inception "$T/inc.safetensors" --seed 3 > /dev/null || fail "random Inception"
$S --export-png "$T/png12" $IDX --limit 12 > /dev/null
$S "$T/png12" --net "$T/inc.safetensors" --out "$T/inc.npz" > "$T/inc.out" 2>&1 || { cat "$T/inc.out"; fail "Inception stats"; }
grep -q '(inception-v3-compat, 2048-d)' "$T/inc.out" || fail "Inception summary"
$S --fid "$T/png12" --net "$T/inc.safetensors" --ref "$T/inc.npz" > "$T/inc2.out" 2>&1 || { cat "$T/inc2.out"; fail "Inception FID"; }
cat "$T/inc2.out"
has_num "$T/inc2.out" FID || fail "Inception FID format"
# 12 samples in 2048-d: rank-11 covariances whose ~2037 zero eigenvalues each leave
# sqrt(rounding) in tr sqrt(s s), so the self-FID is ~0 only to ~1e-3 here.
small "$T/inc2.out" FID 1e-2 || fail "Inception self-FID not ~0"
grep -qE '^IS +[0-9]+\.[0-9]{6} \+- ' "$T/inc2.out" || fail "Inception IS"
echo ok
