#!/bin/sh
# Bad job files and flags: one clear message naming the field, exit status 2, and no
# output folder created.
set -eu
. tests/e2e/lib.inc
good='"model": "models/tiny-test.safetensors", "num_images": 20, "eval_bsz": 3'
n=0
# case NAME 'JSON' 'expected message fragment' [extra flags...]
case_() {
    name=$1; json=$2; want=$3; shift 3
    n=$((n + 1))
    printf '%s\n' "$json" > "$T/$name.json"
    set +e
    gen 1 "$T/$name.json" --output_dir "$T/out-$name" "$@" > "$T/$name.log" 2>&1
    st=$?
    set -e
    [ $st = 2 ] || { cat "$T/$name.log"; fail "$name: exit status $st, expected 2"; }
    grep -qF -- "$want" "$T/$name.log" || { cat "$T/$name.log"; fail "$name: message lacks '$want'"; }
    [ ! -e "$T/out-$name" ] || fail "$name: output folder was created"
    echo "ok $name: $(grep -F -- "$want" "$T/$name.log" | head -n 1)"
}
case_ not_json '{"model": ' "not valid JSON (near line 1)"
case_ top_array '[1, 2]' "the top level must be a JSON object"
case_ unknown_key "{$good, \"colour\": 3}" "unknown key 'colour'"
case_ wrong_type "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": \"many\"}" "'num_images' must be an integer"
case_ out_of_range "{$good, \"sampling\": {\"diff_lower_steps\": 0}}" "'sampling.diff_lower_steps': --diff_lower_steps must be an integer in 1..1000, got '0'"
case_ bad_sampler "{$good, \"sampling\": {\"diff_sampler\": \"euler\"}}" "--diff_sampler must be default, DiSA or DDIM, got 'euler'"
case_ unknown_sampling_key "{$good, \"sampling\": {\"steps\": 3}}" "unknown key 'sampling.steps'"
case_ upper_below_lower "{$good, \"sampling\": {\"diff_upper_steps\": 3, \"diff_lower_steps\": 5}}" "--diff_upper_steps must be in 5..1000"
case_ missing_model '{"model": "models/none.safetensors", "num_images": 20}' "'model': models/none.safetensors: No such file or directory"
case_ no_model '{"num_images": 20}' "'model' is required"
case_ no_images '{"model": "models/tiny-test.safetensors"}' "'num_images' is required"
case_ not_multiple "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 15}" "num_images 15 is not a multiple of the model's 10 classes"
case_ label_range "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 2, \"labels\": [3, 10]}" "'labels[1]' must be in -1..9 for this model, got 10"
case_ label_count "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 3, \"labels\": [3, 1]}" "'labels' has 2 entries but num_images is 3"
case_ vae_for_pixels "{$good, \"vae\": \"models/tiny-test.safetensors\"}" "'vae' must be null"
case_ dup_variant "{$good, \"variants\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}" "variant name 'a' appears twice"
case_ bad_variant_key "{$good, \"variants\": [{\"name\": \"a\", \"cfg\": 2}]}" "unknown key 'variants[0].cfg'"
case_ not_a_model "{\"model\": \"jobs/tiny-test.json\", \"num_images\": 20}" "'model': jobs/tiny-test.json: header length"
case_ bad_flag_value "{$good}" "--cfg must be a number in [1, 100], got 'abc'" --cfg abc
case_ unknown_flag "{$good}" "unknown flag '--colour'" --colour red
case_ bad_threads "{$good}" "--threads must be an integer in 1..1024, got '0'" --threads 0

# No job file at all.
set +e
gen 1 > "$T/none.log" 2>&1; st=$?
set -e
[ $st = 2 ] && grep -q "no job file given" "$T/none.log" || fail "missing job file: status $st"

# Another configuration in an existing folder is refused (nothing changed), --restart replaces it.
gen 1 jobs/tiny-test.json --output_dir "$T/run" --quiet > /dev/null 2>&1 || fail "first run failed"
before=$(cat "$T/run"/*.png | cksum)
set +e
gen 1 jobs/tiny-test.json --output_dir "$T/run" --cfg 3.0 > "$T/other.log" 2>&1; st=$?
set -e
[ $st = 2 ] || fail "other config: exit $st, expected 2"
grep -q "holds a run with another configuration (sampling: 'num_iter=6 cfg=2 " "$T/other.log" || { cat "$T/other.log"; fail "other config message"; }
[ "$(cat "$T/run"/*.png | cksum)" = "$before" ] || fail "the refused run changed the folder"
gen 1 jobs/tiny-test.json --output_dir "$T/run" --cfg 3.0 --restart --quiet > /dev/null 2>&1 || fail "--restart failed"
[ "$(cat "$T/run"/*.png | cksum)" != "$before" ] || fail "--restart did not regenerate"
check_complete "$T/run" 20
echo "ok: $n bad job specs and flags, other-config refusal, --restart"
