#!/bin/sh
# The bf16 forms against the fp32 PyTorch goldens (disa-parity --bf16; tolerance and its
# reason in src/cli/disa-parity.c): the MAR transformer, the diffusion head and the
# KL-16 decoder, each prepared for bf16 and compared with the same outputs as fp32.
set -eu
. tests/e2e/lib.inc
if ! $B/disa-info | grep -q "precision auto: bf16"; then
    echo "SKIP bf16 cannot run on this CPU ($($B/disa-info | grep 'precision auto'))"
    exit 77
fi
set -- tests/golden/mar_forward_*.safetensors tests/golden/mar_diffloss_net_*.safetensors \
    tests/golden/vae_decode_*.safetensors tests/golden/vae_kl16_256.safetensors
$B/disa-parity --bf16 "$@" > "$T/p.log" 2>&1 || { cat "$T/p.log"; fail "bf16 parity"; }
n=$(grep -c "^PASS" "$T/p.log")
[ "$n" = $# ] || { cat "$T/p.log"; fail "$n of $# goldens passed in bf16"; }
! grep -q "^SKIP" "$T/p.log" || fail "an op has no bf16 form: $(grep '^SKIP' "$T/p.log")"
grep "max_abs" "$T/p.log" | awk '{print "  " $1, $3, $4}'
echo "parity_bf16: $n goldens within the bf16 tolerance"
