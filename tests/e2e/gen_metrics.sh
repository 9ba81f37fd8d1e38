#!/bin/sh
# Metrics inside disa-gen: classifier features computed on the workers, FID/IS/precision/
# recall/class accuracy in summary.json, and a run stopped by SIGTERM and resumed gives
# exactly the numbers of an uninterrupted run.
set -eu
. tests/e2e/lib.inc
IDX=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
NET=models/fmnist-classifier.safetensors
[ -f "$IDX" ] || { echo "SKIP: $IDX not installed"; exit 77; }
$B/disa-stats $IDX --limit 500 --net $NET --out "$T/ref.npz" --features --threads 1 > /dev/null 2>&1 || fail "reference statistics"
ARGS="--features $NET --reference $T/ref.npz --num_images 200 --eval_bsz 2 --num_iter 32 --diff_upper_steps 50 --progress 0 --threads 1"
gen 2 jobs/tiny-test.json --output_dir "$T/a" $ARGS > "$T/a.log" 2>&1 || { cat "$T/a.log"; fail "uninterrupted run"; }
grep -q "metrics over 200 images: FID " "$T/a.log" || { cat "$T/a.log"; fail "no metrics line"; }
for k in FID FID_sqrtm IS IS_std IS_adm precision recall class_accuracy; do
    grep -q "\"$k\": [0-9]" "$T/a/summary.json" || fail "summary.json lacks $k"
done
[ "$(ls "$T/a/features" | grep -c '\.safetensors$')" = 100 ] || fail "expected 100 feature shards"

gen 2 jobs/tiny-test.json --output_dir "$T/b" $ARGS > "$T/b1.log" 2>&1 &
mp=$!
wait_lines "$T/b/manifest" 15
kill -TERM $(descendants $mp disa-gen)
wait $mp || fail "SIGTERM run should exit 0"
! grep -q '"metrics"' "$T/b/summary.json" || fail "an incomplete run must not report metrics"
gen 1 jobs/tiny-test.json --output_dir "$T/b" $ARGS > "$T/b2.log" 2>&1 || { cat "$T/b2.log"; fail "resume"; }
ma=$(grep -o '"metrics": {.*"seconds"' "$T/a/summary.json" | sed 's/, "seconds"//')
mb=$(grep -o '"metrics": {.*"seconds"' "$T/b/summary.json" | sed 's/, "seconds"//')
[ -n "$ma" ] && [ "$ma" = "$mb" ] || fail "resumed metrics differ: '$ma' vs '$mb'"
echo "ok: $ma"
