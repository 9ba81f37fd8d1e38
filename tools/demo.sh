#!/bin/sh
# make demo: the main job on the embedded default model: the Fashion-MNIST MAR
# (models/README.md) sampled by the original MAR sampler, its clipped fair baseline and
# DiSA 50->5, scored by the embedded classifier, with one comparison table and a grid of
# each variant.
set -e
B=${BUILD:-build}/bin
NP=${NP:-2}
if [ ! -f models/fmnist-mar.safetensors ] || [ ! -f jobs/demo.json ]; then
    echo "demo: models/fmnist-mar.safetensors or jobs/demo.json is missing; running a tiny RANDOM-weight model instead"
    tools/mpirun.sh "$NP" "$B/disa-gen" jobs/tiny-test.json --output_dir results/demo-tiny --restart \
        --features models/fmnist-classifier.safetensors --num_images 100 --eval_bsz 10 --progress 5
    exit 0
fi
tools/mpirun.sh "$NP" "$B/disa-gen" jobs/demo.json --restart --progress 15
# One grid per variant: 10 images per class, enlarged 4x, each row named by its class.
CLASSES="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
for v in results/demo/*/; do
    name=$(basename "$v")
    "$B/disa-grid" "$v" "results/demo/grid-$name.png" --cols 10 --rows-by class --scale 4 --labels "$CLASSES" \
        --title "$name" > /dev/null
done
echo "demo: images in results/demo/<variant>/, one grid per variant in results/demo/grid-<variant>.png,"
echo "demo: the variants side by side in results/demo/comparison.png;"
echo "demo: FID is in the classifier's 128-d feature space: 300 real training images score 12.6 against the"
echo "demo: test statistics, so differences of a few points between variants are noise at this sample size."
