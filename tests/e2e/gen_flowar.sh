#!/bin/sh
# FlowAR under disa-gen: a small FlowAR (scales 1, 2, 4: a 4x4x16 latent) with a
# random-weight KL-16 decoder of the official shape. 64x64 RGB images, byte-identical on
# 1 and 2 ranks (one thread per rank) and between disa-gen and disa-sample, verified on
# resume; a job mixing in another family's keys, or with out-of-range steps or guidance,
# or a MAR model with FlowAR's keys, is refused (exit 2, one message naming it).
set -eu
. tests/e2e/lib.inc
$B/disa-mkmodel --vae kl16 --out "$T/kl16.safetensors" --seed 3 > /dev/null || fail "mkmodel vae"
$B/disa-mkmodel --out "$T/flowar.safetensors" --seed 5 --config '{"format":"disa-flowar-1","img_size":64,"vae_stride":16,
 "patch_size":1,"vae_embed_dim":16,"encoder_embed_dim":32,"encoder_depth":1,"encoder_num_heads":2,"decoder_embed_dim":32,
 "decoder_depth":1,"decoder_num_heads":2,"buffer_size":0,"class_num":10,"diffloss_d":2,"diffloss_w":128,"scale":[1,2,4],
 "cross":true,"tokenizer":"kl16"}' > /dev/null || fail "mkmodel flowar"
SAMPLING='"flow_upper_steps": 6, "flow_lower_steps": 3, "cfg": 2.5, "guidance": 0.9'
cat > "$T/fl.json" <<JSON
{"model": "$T/flowar.safetensors", "vae": "$T/kl16.safetensors", "num_images": 10, "eval_bsz": 5,
 "labels": [3,3,3,3,3,7,7,7,7,7], "sampling": {$SAMPLING}}
JSON
gen 1 "$T/fl.json" --output_dir "$T/a" --threads 1 > "$T/a.log" 2>&1 || { cat "$T/a.log"; fail "1 rank"; }
gen 2 "$T/fl.json" --output_dir "$T/b" --threads 1 > "$T/b.log" 2>&1 || { cat "$T/b.log"; fail "2 ranks"; }
check_complete "$T/a" 10
check_complete "$T/b" 10
same_pngs "$T/a" "$T/b"
grep -q "flow_upper_steps=6 flow_lower_steps=3 cfg=2.5 guidance=0.9" "$T/a/run.json" || fail "run.json lacks the sampling settings"
echo "disa-gen: FlowAR PNGs identical on 1 and 2 ranks"
gen 1 "$T/fl.json" --output_dir "$T/a" > "$T/c.log" 2>&1 || fail "rerun"
grep -q "resuming: 2 of 2 units done and verified" "$T/c.log" || { cat "$T/c.log"; fail "PNGs did not verify as 64x64 RGB"; }

# disa-sample draws image i from the same streams as disa-gen's image i of a unit
# starting at 0: the first unit's pixels match.
$B/disa-sample --model "$T/flowar.safetensors" --vae "$T/kl16.safetensors" --class 3 --seed 1 --num_images 5 \
    --flow_upper_steps 6 --flow_lower_steps 3 --cfg 2.5 --guidance 0.9 --threads 1 --out "$T/s" > "$T/s.log" 2>&1 ||
    { cat "$T/s.log"; fail "disa-sample"; }
mkdir "$T/first"
for i in 0 1 2 3 4; do cp "$T/a/$(printf %05d.png $i)" "$T/first/"; done
$B/disa-npz "$T/first" "$T/gen.npz" --labels none > /dev/null 2>&1 || fail "disa-npz of disa-gen images"
$B/disa-npz "$T/s" "$T/sample.npz" --labels none > /dev/null 2>&1 || fail "disa-npz of disa-sample images"
cmp -s "$T/gen.npz" "$T/sample.npz" || fail "disa-sample and disa-gen images differ"
echo "disa-sample: the same images as disa-gen"

refuse() { # NAME FRAGMENT JOB-JSON [FLAGS...]
    name=$1; frag=$2; printf '%s\n' "$3" > "$T/$name.json"; shift 3
    set +e; gen 1 "$T/$name.json" --output_dir "$T/r_$name" "$@" > "$T/$name.log" 2>&1; st=$?; set -e
    [ $st = 2 ] || { cat "$T/$name.log"; fail "$name: exit status $st, expected 2"; }
    grep -qF -- "$frag" "$T/$name.log" || { cat "$T/$name.log"; fail "$name: message lacks '$frag'"; }
    [ ! -e "$T/r_$name" ] || [ -z "$(ls "$T/r_$name")" ] || fail "$name: output written"
    echo "refused $name: $(grep -F -- "$frag" "$T/$name.log" | head -n 1)"
}
J="\"model\": \"$T/flowar.safetensors\", \"vae\": \"$T/kl16.safetensors\", \"num_images\": 10"
refuse mar_key "'sampling.num_iter': '--num_iter' does not apply to flowar models" "{$J, \"sampling\": {\"num_iter\": 64}}"
refuse mar_flag "'--diff_upper_steps' does not apply to flowar models" "{$J}" --diff_upper_steps 50
refuse lower1 "--flow_lower_steps must be an integer in 2..1000, got '1'" "{$J, \"sampling\": {\"flow_lower_steps\": 1}}"
refuse upper_low "--flow_upper_steps must be in 15..1000 (>= --flow_lower_steps), got 10" "{$J, \"sampling\": {\"flow_upper_steps\": 10}}"
refuse guidance "--guidance must be a number in [0, 1], got '1.5'" "{$J}" --guidance 1.5
refuse mar_model "'--flow_upper_steps' does not apply to mar models" \
    "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 20, \"sampling\": {\"flow_upper_steps\": 25}}"
echo ok
