#!/bin/sh
# Installs the Debian packages the build, the tests and the demo need (make deps).
# As root: apt-get installs what is missing. Otherwise: prints the exact command.
#   sh tools/deps.sh fuzz   the extra packages of `make fuzz` only: clang and the clang 14
#                           runtime that holds libFuzzer (libclang_rt.fuzzer), not needed
#                           by the build or `make test`.
PKGS="build-essential pkg-config openmpi-bin libopenmpi-dev libopenblas-dev libpng-dev
libcjson-dev libcmocka-dev libzip-dev zlib1g-dev libdnnl-dev dataset-fashion-mnist gnuplot-nox"
[ "${1:-}" = fuzz ] && PKGS="clang libclang-rt-14-dev"
#   sh tools/deps.sh tools  Debian's PyTorch for tools/ (converters, golden generators,
#                           trainers) and the converter tests, which SKIP without it.
[ "${1:-}" = tools ] && PKGS="python3-torch python3-numpy python3-scipy"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps: all Debian packages present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing:$missing"
    echo "deps: run: sudo apt-get update && sudo apt-get install -y$missing"
    exit 1
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || exit 1
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing || exit 1
