#!/bin/sh
# make demo: the main job on the embedded default model.
set -e
B=${BUILD:-build}/bin
NP=${NP:-2}
if [ -f models/fmnist-mar.safetensors ] && [ -f jobs/demo.json ]; then
    exec tools/mpirun.sh "$NP" "$B/disa-gen" jobs/demo.json
fi
echo "demo: the embedded Fashion-MNIST MAR (models/fmnist-mar.safetensors, jobs/demo.json) is not in this build yet."
echo "demo: running the smallest real job instead: disa-gen on $NP ranks with a tiny RANDOM-weight model"
echo "demo: (its images are noise), through sampling, PNGs, the ledger, classifier features, metrics and the summary."
tools/mpirun.sh "$NP" "$B/disa-gen" jobs/tiny-test.json --output_dir results/demo-tiny --restart \
    --features models/fmnist-classifier.safetensors --num_images 100 --eval_bsz 10 --progress 5
"$B/disa-grid" results/demo-tiny results/demo-tiny/grid.png --cols 10 --rows-by class
echo "demo: images, summary.json and grid.png are in results/demo-tiny/"
