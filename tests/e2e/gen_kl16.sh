#!/bin/sh
# The KL-16 path of disa-gen and disa-sample: a small MAR with the KL-16 tokenizer and a
# random-weight decoder of the official shape (disa-mkmodel). 64x64 RGB images, identical
# on 1 and 2 ranks and between disa-gen and disa-sample, verified on resume; with
# --precision bf16 (where it can run) decoded by oneDNN bf16 convolutions, again the
# same on 1 and 2 ranks.
set -eu
. tests/e2e/lib.inc
$B/disa-mkmodel --vae kl16 --out "$T/kl16.safetensors" --seed 3 > /dev/null || fail "mkmodel vae"
$B/disa-mkmodel --out "$T/mar.safetensors" --seed 5 --config '{"format":"disa-mar-1","img_size":64,"vae_stride":16,
 "patch_size":1,"vae_embed_dim":16,"encoder_embed_dim":32,"encoder_depth":1,"encoder_num_heads":4,"decoder_embed_dim":32,
 "decoder_depth":1,"decoder_num_heads":4,"buffer_size":4,"class_num":10,"diffloss_d":2,"diffloss_w":64,"tokenizer":"kl16"}' \
 > /dev/null || fail "mkmodel mar"
cat > "$T/kl.json" <<JSON
{"model": "$T/mar.safetensors", "vae": "$T/kl16.safetensors", "num_images": 10, "eval_bsz": 5, "labels": [3,3,3,3,3,3,3,3,3,3],
 "sampling": {"num_iter": 4, "cfg": 2.0, "diff_sampler": "DiSA", "diff_upper_steps": 10, "diff_lower_steps": 4}}
JSON
gen 1 "$T/kl.json" --output_dir "$T/a" --threads 1 > "$T/a.log" 2>&1 || { cat "$T/a.log"; fail "1 rank"; }
gen 2 "$T/kl.json" --output_dir "$T/b" --threads 1 > "$T/b.log" 2>&1 || { cat "$T/b.log"; fail "2 ranks"; }
check_complete "$T/a" 10
same_pngs "$T/a" "$T/b"
# Every PNG is 64x64 RGB: the resume check decodes each one against that geometry.
gen 1 "$T/kl.json" --output_dir "$T/a" > "$T/c.log" 2>&1 || fail "rerun"
grep -q "resuming: 2 of 2 units done and verified" "$T/c.log" || { cat "$T/c.log"; fail "PNGs did not verify as 64x64 RGB"; }
# A KL-16 model without a decoder is refused.
printf '{"model": "%s", "num_images": 10}\n' "$T/mar.safetensors" > "$T/novae.json"
set +e; gen 1 "$T/novae.json" --output_dir "$T/n" > "$T/n.log" 2>&1; st=$?; set -e
[ $st = 2 ] && grep -q "'vae' is required" "$T/n.log" || fail "missing vae: status $st"
# disa-sample draws image i from the same streams (seed, i) as disa-gen's image i of a unit
# starting at 0, so the first unit's PNGs match byte for byte when the settings do.
$B/disa-sample --model "$T/mar.safetensors" --vae "$T/kl16.safetensors" --class 3 --seed 1 --num_images 5 --num_iter 4 \
    --cfg 2.0 --diff_sampler DiSA --diff_upper_steps 10 --diff_lower_steps 4 --threads 1 --out "$T/s" > "$T/s.log" 2>&1 || { cat "$T/s.log"; fail "disa-sample"; }
mkdir "$T/first"
for i in 0 1 2 3 4; do cp "$T/a/$(printf %05d.png $i)" "$T/first/"; done
# The tEXt chunks differ (disa-sample has no job name), so compare the pixels: disa-npz
# writes arr_0 deterministically from the decoded images.
$B/disa-npz "$T/first" "$T/gen.npz" --labels none > /dev/null 2>&1 || fail "disa-npz of disa-gen images"
$B/disa-npz "$T/s" "$T/sample.npz" --labels none > /dev/null 2>&1 || fail "disa-npz of disa-sample images"
cmp -s "$T/gen.npz" "$T/sample.npz" || fail "disa-sample and disa-gen images differ"
if $B/disa-info | grep -q "precision auto: bf16"; then
    ONEDNN_VERBOSE=1 gen 1 "$T/kl.json" --output_dir "$T/h1" --threads 1 --precision bf16 > "$T/h1.log" 2>&1 ||
        { tail "$T/h1.log"; fail "bf16, 1 rank"; }
    gen 2 "$T/kl.json" --output_dir "$T/h2" --threads 1 --precision bf16 > "$T/h2.log" 2>&1 || { cat "$T/h2.log"; fail "bf16, 2 ranks"; }
    check_complete "$T/h1" 10
    same_pngs "$T/h1" "$T/h2"
    grep -q "precision=bf16" "$T/h1/run.json" || fail "bf16 run.json"
    # 3x3 convolutions of the decoder (16 -> 512 at 4x4 up to 128 -> 3 at 64x64) in bf16.
    n=$(grep -c "^onednn_verbose,exec,cpu,convolution,.*src_bf16.*ic128oc3_ih64" "$T/h1.log" || true)
    [ "$n" = 10 ] || fail "expected conv_out in bf16 once per image, found $n: $(grep -m3 convolution "$T/h1.log")"
    ! grep -q "^onednn_verbose,exec,cpu,[a-z_]*,ref:" "$T/h1.log" || fail "a reference kernel ran: $(grep -m2 ',ref:' "$T/h1.log")"
    ! cmp -s "$T/a/00000.png" "$T/h1/00000.png" || fail "bf16 image equals the fp32 one"
    echo "bf16: 10 images decoded by bf16 convolutions, identical on 1 and 2 ranks"
fi
echo ok
