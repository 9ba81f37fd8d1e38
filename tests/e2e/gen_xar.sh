#!/bin/sh
# xAR through disa-gen and disa-sample: a small random-weight xAR with the KL-16 tokenizer
# and a random-weight decoder of the official shape (disa-mkmodel). 64x64 RGB images,
# identical on 1 and 2 ranks and between disa-gen and disa-sample, resumed after SIGTERM
# to the ranks with every image identical to the uninterrupted run, and a folder of
# other flow steps refused. xAR runs in fp32: --precision auto is fp32 bit for bit (and
# says why), bf16 is refused with exit 2 before anything is written.
set -eu
. tests/e2e/lib.inc
$B/disa-mkmodel --vae kl16 --out "$T/kl16.safetensors" --seed 3 > /dev/null || fail "mkmodel vae"
$B/disa-mkmodel --out "$T/xar.safetensors" --seed 5 --config '{"format":"disa-xar-1","img_size":64,"vae_stride":16,
 "patch_size":1,"vae_embed_dim":16,"encoder_embed_dim":32,"encoder_depth":1,"encoder_num_heads":4,"decoder_embed_dim":32,
 "decoder_depth":1,"decoder_num_heads":4,"mlp_ratio":4,"class_num":10,"clusters":4,"tokenizer":"kl16"}' \
 > /dev/null || fail "mkmodel xar"
cat > "$T/x.json" <<JSON
{"model": "$T/xar.safetensors", "vae": "$T/kl16.safetensors", "num_images": 10, "eval_bsz": 5, "labels": [3,3,3,3,3,3,3,3,3,3],
 "sampling": {"cfg": 2.0, "cfg_schedule": "linear", "flow_upper_steps": 6, "flow_lower_steps": 3}}
JSON
gen 1 "$T/x.json" --output_dir "$T/a" --threads 1 > "$T/a.log" 2>&1 || { cat "$T/a.log"; fail "1 rank"; }
# The 2-rank run asks for auto: fp32 for xAR, so its images are the 1-rank fp32 ones.
gen 2 "$T/x.json" --output_dir "$T/b" --threads 1 --precision auto > "$T/b.log" 2>&1 || { cat "$T/b.log"; fail "2 ranks"; }
check_complete "$T/a" 10
same_pngs "$T/a" "$T/b"
grep -q '"precision":[[:space:]]*"fp32"' "$T/b/run.json" || fail "auto for xAR: run.json does not record fp32"
! grep -q "precision auto: bf16" "$T/b.log" || fail "auto for xAR: the log names bf16"
# The recipe in the PNGs and run.json is xAR's, under its flag names.
grep -q "flow_upper_steps=6 flow_lower_steps=3 cfg=2 cfg_schedule=linear flow_sampler=euler_maruyama" "$T/a/run.json" ||
    fail "run.json lacks the xAR sampling settings"
grep -q "flow_upper_steps=6" "$T/a/00000.png" || fail "the PNG recipe lacks the xAR sampling settings"
# Flow steps per token: 6, 5, 4, 3 over the four groups of 4 tokens.
grep -q '"mean_diffusion_steps_per_token": 4.5' "$T/a/summary.json" || { cat "$T/a/summary.json"; fail "steps per token is not 4.5"; }
gen 1 "$T/x.json" --output_dir "$T/a" > "$T/c.log" 2>&1 || fail "rerun"
grep -q "resuming: 2 of 2 units done and verified" "$T/c.log" || { cat "$T/c.log"; fail "the finished run did not verify"; }
# Other flow steps are another configuration: refused, the folder unchanged.
before=$(cat "$T/a"/*.png | cksum)
set +e; gen 1 "$T/x.json" --output_dir "$T/a" --flow_lower_steps 2 > "$T/d.log" 2>&1; st=$?; set -e
[ $st = 2 ] && grep -q "holds a run with another configuration" "$T/d.log" || { cat "$T/d.log"; fail "other flow steps: status $st"; }
[ "$(cat "$T/a"/*.png | cksum)" = "$before" ] || fail "the refused run changed the folder"

# disa-sample draws image i from the same streams (seed, i) as disa-gen's image i of a unit
# starting at 0, so the first unit's pixels match when the settings do.
$B/disa-sample --model "$T/xar.safetensors" --vae "$T/kl16.safetensors" --class 3 --seed 1 --num_images 5 --cfg 2.0 \
    --flow_upper_steps 6 --flow_lower_steps 3 --threads 1 --out "$T/s" > "$T/s.log" 2>&1 || { cat "$T/s.log"; fail "disa-sample"; }
mkdir "$T/first"
for i in 0 1 2 3 4; do cp "$T/a/$(printf %05d.png $i)" "$T/first/"; done
$B/disa-npz "$T/first" "$T/gen.npz" --labels none > /dev/null 2>&1 || fail "disa-npz of disa-gen images"
$B/disa-npz "$T/s" "$T/sample.npz" --labels none > /dev/null 2>&1 || fail "disa-npz of disa-sample images"
cmp -s "$T/gen.npz" "$T/sample.npz" || fail "disa-sample and disa-gen images differ"
XS="--model $T/xar.safetensors --vae $T/kl16.safetensors --class 3 --seed 1 --num_images 5 --cfg 2.0 --flow_upper_steps 6 --flow_lower_steps 3 --threads 1"
$B/disa-sample $XS --precision auto --out "$T/sauto" > "$T/sauto.log" 2>&1 || { cat "$T/sauto.log"; fail "disa-sample auto"; }
grep -q "precision fp32 (xar models run in fp32 for now)" "$T/sauto.log" || fail "auto: no reason: $(cat "$T/sauto.log")"
cmp -s "$T/s/tokens.npy" "$T/sauto/tokens.npy" || fail "xAR with --precision auto differs from fp32"
set +e
$B/disa-sample $XS --precision bf16 --out "$T/sbf16" > "$T/sbf16.log" 2>&1
s=$?
set -e
[ "$s" = 2 ] || { cat "$T/sbf16.log"; fail "xAR --precision bf16 exited $s, expected 2"; }
grep -q -- "--precision bf16 runs MAR models; xAR runs in fp32 for now: give --precision fp32" "$T/sbf16.log" ||
    fail "xAR bf16: no message: $(cat "$T/sbf16.log")"
[ ! -e "$T/sbf16" ] || fail "disa-sample wrote output before refusing bf16 for xAR"

# SIGTERM to the ranks mid-run: exit 0 and resumable; the re-run completes it with the
# images of an uninterrupted run.
sed 's/, "labels": \[[0-9,]*\]//' "$T/x.json" > "$T/y.json"
ARGS="--num_images 60 --eval_bsz 2 --flow_upper_steps 40 --flow_lower_steps 20 --progress 0 --threads 1"
gen 2 "$T/y.json" --output_dir "$T/ref" $ARGS --quiet > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "reference run"; }
check_complete "$T/ref" 60
gen 2 "$T/y.json" --output_dir "$T/term" $ARGS > "$T/term.log" 2>&1 &
mp=$!
wait_lines "$T/term/manifest" 3
kill -TERM $(descendants $mp disa-gen)
wait $mp || { cat "$T/term.log"; fail "SIGTERM should end with exit 0"; }
grep -q "resumable" "$T/term.log" || { cat "$T/term.log"; fail "no 'resumable' message after SIGTERM"; }
[ "$(wc -l < "$T/term/manifest")" -lt 30 ] || fail "the run finished before SIGTERM; make it longer"
gen 2 "$T/y.json" --output_dir "$T/term" $ARGS > "$T/term2.log" 2>&1 || { cat "$T/term2.log"; fail "re-run after SIGTERM"; }
grep -q "resuming: " "$T/term2.log" || { cat "$T/term2.log"; fail "the re-run did not resume"; }
check_complete "$T/term" 60
same_pngs "$T/ref" "$T/term"
echo ok
