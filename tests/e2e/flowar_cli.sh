# disa-flowar on a small generated FlowAR: a written model loads and samples, the same
# seed gives the same latent bit for bit (one thread), another seed another one, and bad
# input (a file of another family, flags of another family, out-of-range steps or
# guidance, a class the model lacks) exits 2 with one message naming it and writes
# nothing; a missing or damaged model file exits 1 (tests/bad_inputs.md's conventions).
. tests/e2e/lib.inc
CFG='{"format":"disa-flowar-1","img_size":256,"vae_stride":16,"patch_size":1,"vae_embed_dim":16,"encoder_embed_dim":32,"encoder_depth":2,"encoder_num_heads":2,"decoder_embed_dim":32,"decoder_depth":1,"decoder_num_heads":2,"mlp_ratio":4.0,"buffer_size":0,"class_num":10,"diffloss_d":2,"diffloss_w":128,"scale":[1,2,4,8,16],"cross":true,"tokenizer":"kl16"}'
"$B/disa-flowar" --config "$CFG" --write "$T/m.safetensors" > "$T/out" 2>&1 || { cat "$T/out"; fail "--write"; }
run() { # OUTDIR SEED
    "$B/disa-flowar" --model "$T/m.safetensors" --num_images 2 --seed "$2" --threads 1 --flow_upper_steps 5 \
        --flow_lower_steps 2 --cfg 3.0 --guidance 0.8 --out "$1" > "$1.log" 2>&1 || { cat "$1.log"; fail "sampling into $1"; }
    [ -s "$1/tokens.npy" ] || fail "$1/tokens.npy not written"
}
run "$T/a" 3
run "$T/b" 3
run "$T/c" 4
cmp -s "$T/a/tokens.npy" "$T/b/tokens.npy" || fail "the same seed gave different latents"
! cmp -s "$T/a/tokens.npy" "$T/c/tokens.npy" || fail "another seed gave the same latent"
grep -q "flow evaluations per token" "$T/a.log" || fail "no timing table"
echo "disa-flowar: repeatable latents, timing table printed"

refuse() { # [-1] FRAGMENT ARGS...   (-1: exit status 1 expected, else 2)
    want=2
    [ "$1" = -1 ] && { want=1; shift; }
    frag=$1; shift
    "$B/disa-flowar" "$@" --out "$T/refused" > "$T/out" 2>&1
    st=$?
    [ $st = $want ] || { cat "$T/out"; fail "$*: exit status $st, expected $want"; }
    grep -qF -- "$frag" "$T/out" || { cat "$T/out"; fail "$*: message lacks '$frag'"; }
    [ ! -e "$T/refused" ] || fail "$*: output written"
    echo "refused: $(grep -F -- "$frag" "$T/out" | head -n 1)"
}
M="--model $T/m.safetensors"
refuse "config 'format' is \"disa-mar-1\", not \"disa-flowar-1\": not a FlowAR model" --model models/tiny-test.safetensors
refuse "unknown flag '--num_iter'" $M --num_iter 64
refuse "unknown flag '--diff_upper_steps'" $M --diff_upper_steps 50
refuse "--flow_lower_steps must be an integer in 2..1000, got '1'" $M --flow_lower_steps 1
refuse "--flow_upper_steps must be in 15..1000 (>= --flow_lower_steps), got 10" $M --flow_upper_steps 10
refuse "--guidance must be a number in [0, 1], got '1.5'" $M --guidance 1.5
refuse "--cfg must be a number in [1, 100], got '0.5'" $M --cfg 0.5
refuse "--class must be in -1..9 for this model, got 10" $M --class 10
refuse -1 "no/such.safetensors" --model no/such.safetensors
head -c 3000 "$T/m.safetensors" > "$T/trunc.safetensors"
refuse -1 "trunc.safetensors" --model "$T/trunc.safetensors"
echo "flowar_cli: all checks passed"
