# The checkpoint converters: tools/convert_mar.py on small random-init checkpoints with
# the official layout (tests/tools/mar_ckpt.py), checked in Python (tensors bit for bit,
# config) and in C (disa-sample loads and runs them, with tokens identical to the same
# weights exported by tools/marref; a broken file is refused naming the tensors), then
# the quick self tests of tools/convert_flowar.py, tools/convert_vae.py, tools/convert_xar.py
# (conversions, refusals, and the C sampler on a converted file against the reference) and
# tools/convert_inception.py.
# Needs Debian's PyTorch at /usr/bin/python3: skipped (exit 77) without it.
. tests/e2e/lib.inc
PY=/usr/bin/python3
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "SKIP converters: $PY has no torch (apt-get install python3-torch)"
    exit 77
fi
D=$T/mar
"$PY" tests/tools/mar_ckpt.py make "$D" || fail "building the test checkpoints"
conv() { "$PY" tools/convert_mar.py "$@"; }
conv "$D/ckpt.pth" "$D/conv_ema.safetensors" --heads 4 || fail "convert (EMA, default)"
conv "$D/ckpt_list.pth" "$D/conv_list.safetensors" --heads 4 || fail "convert (EMA as a parameter list)"
conv "$D/ckpt.pth" "$D/conv_raw.safetensors" --heads 4 --no-ema || fail "convert --no-ema"
conv "$D/ckpt.pth" "$D/conv_f16.safetensors" --heads 4 --dtype f16 || fail "convert --dtype f16"
conv "$D/ckpt.pth" "$D/conv_bf16.safetensors" --heads 4 --dtype bf16 || fail "convert --dtype bf16"
"$PY" tests/tools/mar_ckpt.py check "$D" || fail "converted tensors differ from the checkpoint"

# Refusals: exit status 1, a message naming the problem, no output file.
refuse() { # CKPT FRAGMENT [FLAGS...]
    ck=$1; frag=$2; shift 2
    conv "$D/$ck" "$D/refused.safetensors" "$@" > "$T/out" 2>&1
    st=$?
    [ $st = 1 ] || { cat "$T/out"; fail "$ck: exit status $st, expected 1"; }
    grep -qF -- "$frag" "$T/out" || { cat "$T/out"; fail "$ck: message lacks '$frag'"; }
    [ ! -e "$D/refused.safetensors" ] && [ ! -e "$D/refused.safetensors.tmp" ] || fail "$ck: output written"
    echo "refused $ck: $(grep -F -- "$frag" "$T/out" | head -n 1)"
}
refuse ckpt_missing.pth "missing tensor 'decoder_blocks.0.attn.proj.weight'" --heads 4
refuse ckpt_shape.pth "tensor 'diffloss.net.cond_embed.weight': got [32, 48], expected [48, 32]" --heads 4
refuse ckpt_extra.pth "unexpected tensor 'vae.encoder.conv_in.weight'" --heads 4
refuse ckpt_noema.pth "use --no-ema" --heads 4
refuse ckpt.pth "give --preset"
refuse ckpt.pth "does not match --preset mar_base: encoder_embed_dim 32 (preset 768)" --preset mar_base
refuse nonexistent.pth "no such file" --heads 4
printf 'not a pickle' > "$D/junk.pth"
refuse junk.pth "not a torch checkpoint" --heads 4

# C: the converted files load and sample; F32 files give the same tokens as the
# reference export of the same weights; EMA and raw weights give different tokens.
samp() { # MODEL OUTDIR
    "$B/disa-sample" --model "$1" --class 3 --seed 7 --num_images 2 --num_iter 4 --cfg 2.0 \
        --diff_sampler DiSA --diff_upper_steps 6 --diff_lower_steps 2 --out "$2" > "$2.log" 2>&1 ||
        { cat "$2.log"; fail "disa-sample on $1"; }
    [ -s "$2/tokens.npy" ] || fail "$2/tokens.npy not written"
}
for m in conv_ema conv_list conv_raw conv_f16 conv_bf16 ref_ema ref_raw; do samp "$D/$m.safetensors" "$D/s_$m"; done
cmp -s "$D/s_conv_ema/tokens.npy" "$D/s_ref_ema/tokens.npy" || fail "converted EMA file samples differently from the reference export"
cmp -s "$D/s_conv_list/tokens.npy" "$D/s_ref_ema/tokens.npy" || fail "converted EMA list samples differently from the reference export"
cmp -s "$D/s_conv_raw/tokens.npy" "$D/s_ref_raw/tokens.npy" || fail "converted --no-ema file samples differently from the reference export"
! cmp -s "$D/s_conv_ema/tokens.npy" "$D/s_conv_raw/tokens.npy" || fail "EMA and raw weights give the same tokens"
echo "disa-sample: converted F32/F16/BF16 files load and run; F32 tokens identical to the reference exports"
"$B/disa-sample" --model "$D/ref_bad.safetensors" --class 3 --out "$D/s_bad" > "$T/out" 2>&1
st=$?
[ $st != 0 ] && [ $st -lt 128 ] || fail "disa-sample on a broken model: exit status $st"
grep -qF "tensor 'encoder_blocks.1.mlp.fc2.bias' is missing" "$T/out" || { cat "$T/out"; fail "missing tensor not named"; }
grep -qF "tensor 'decoder_norm.weight': got [31], expected [32]" "$T/out" || { cat "$T/out"; fail "mis-shaped tensor not named"; }
echo "disa-sample: a broken model is refused naming both tensors"

# The other converters' quick self tests; FlowAR's also samples a converted file in C
# (flowar_open + flowar_sampler_run against the reference, through disa-parity).
"$PY" tools/convert_flowar.py --self-test --keep "$T/flowar" || fail "tools/convert_flowar.py --self-test"
"$PY" tools/convert_vae.py --self-test --keep "$T/vae" || fail "tools/convert_vae.py --self-test"
BUILD=${BUILD:-build} "$PY" tools/convert_xar.py --self-test --keep "$T/xar" || fail "tools/convert_xar.py --self-test"
"$PY" tools/convert_inception.py --random "$T/inc.pth" --seed 3 || fail "convert_inception --random"
"$PY" tools/convert_inception.py "$T/inc.pth" "$T/inc.safetensors" || fail "convert_inception"
"$B/disa-stats" tests/data/png --out "$T/inc_ref.npz" --net "$T/inc.safetensors" > "$T/out" 2>&1 ||
    { cat "$T/out"; fail "disa-stats with the converted Inception"; }
echo "converters: all checks passed"
