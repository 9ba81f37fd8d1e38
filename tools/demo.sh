#!/bin/sh
# make demo: the main job on the embedded default model.
# The embedded Fashion-MNIST MAR and disa-gen are not part of this build yet, so this runs
# the largest real work the build can do today and says so: the machine report on NP MPI
# ranks (with the OpenBLAS core fix) and the full golden parity check of the kernels.
set -e
B=${BUILD:-build}/bin
NP=${NP:-2}
if [ -x "$B/disa-gen" ] && [ -f models/fmnist-mar.safetensors ] && [ -f jobs/demo.json ]; then
    exec tools/mpirun.sh "$NP" "$B/disa-gen" jobs/demo.json
fi
echo "demo: the embedded default model (models/fmnist-mar.safetensors) and disa-gen are not in this build yet."
echo "demo: running what exists: the machine report on $NP MPI ranks, then every golden parity case."
tools/mpirun.sh "$NP" "$B/disa-info" --mpi
"$B/disa-parity" tests/golden/*.safetensors | grep -E '^(PASS|FAIL)|disa-parity:'
