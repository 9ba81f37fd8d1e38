#!/bin/sh
# Bad job files and flags: one clear message naming the field, exit status 2, and no
# output folder created.
set -eu
. tests/e2e/lib.inc
good='"model": "models/tiny-test.safetensors", "num_images": 20, "eval_bsz": 3'
cases=0
# case NAME 'JSON' 'expected message fragment' [extra flags...]
case_() {
    name=$1; json=$2; want=$3; shift 3
    cases=$((cases + 1))
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
case_ not_json '{"model": ' "not valid JSON (at byte offset 10)"
case_ top_array '[1, 2]' "the top level must be a JSON object"
case_ unknown_key "{$good, \"colour\": 3}" "unknown key 'colour'"
case_ wrong_type "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": \"many\"}" "'num_images' must be an integer"
case_ out_of_range "{$good, \"sampling\": {\"diff_lower_steps\": 0}}" "'sampling.diff_lower_steps': --diff_lower_steps must be an integer in 1..1000, got '0'"
case_ bad_sampler "{$good, \"sampling\": {\"diff_sampler\": \"euler\"}}" "--diff_sampler must be default, DiSA, DDIM, DPM_Solver or DPM_Solver++, got 'euler'"
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
# The DPM solvers' order and the adaptive strategy's budget, checked before any work.
case_ dpm_order_steps "{$good, \"sampling\": {\"diff_sampler\": \"DPM_Solver++\", \"dpm_order\": 3, \"diff_upper_steps\": 10, \"diff_lower_steps\": 2}}" \
    "--dpm_order 3 needs at least 3 diffusion steps at every AR step, but --diff_lower_steps is 2"
case_ dpm_order_range "{$good, \"sampling\": {\"diff_sampler\": \"DPM_Solver\", \"dpm_order\": 4}}" \
    "'sampling.dpm_order': --dpm_order must be an integer in 1..3, got '4'"
case_ budget_range "{$good, \"sampling\": {\"diff_sampler\": \"DiSA\", \"diff_annealing_strategy\": \"adaptive\", \"diff_upper_steps\": 20, \"diff_lower_steps\": 5, \"diff_budget\": 25}}" \
    "--diff_budget must be in [5, 20] (--diff_lower_steps..--diff_upper_steps) for --diff_annealing_strategy adaptive, got 25"
case_ budget_missing "{$good, \"sampling\": {\"diff_sampler\": \"DiSA\", \"diff_annealing_strategy\": \"adaptive\"}}" \
    "--diff_budget must be in [5, 25]"
case_ adaptive_ddim "{$good, \"sampling\": {\"diff_sampler\": \"DDIM\", \"diff_annealing_strategy\": \"adaptive\", \"diff_budget\": 10}}" \
    "--diff_annealing_strategy adaptive needs --diff_sampler DiSA, DPM_Solver or DPM_Solver++"
case_ bad_strategy "{$good, \"sampling\": {\"diff_annealing_strategy\": \"sometimes\"}}" \
    "--diff_annealing_strategy must be linear, cosine, two-stage, constant or adaptive, got 'sometimes'"
case_ bad_signal "{$good}" "--diff_adaptive_signal must be cfg, var or eps, got 'entropy'" \
    --diff_annealing_strategy adaptive --diff_budget 12 --diff_adaptive_signal entropy
case_ bad_flag_value "{$good}" "--cfg must be a number in [1, 100], got 'abc'" --cfg abc
case_ unknown_flag "{$good}" "unknown flag '--colour'" --colour red
case_ bad_threads "{$good}" "--threads must be an integer in 1..1024, got '0'" --threads 0
# One strict JSON policy (include/disa/json.h): duplicates, trailing text, exact types,
# no NUL, valid UTF-8.
case_ dup_key "{$good, \"num_images\": 30}" "key 'num_images' appears twice"
case_ dup_sampling_key "{$good, \"sampling\": {\"cfg\": 2, \"cfg\": 3}}" "key 'sampling.cfg' appears twice"
case_ trailing "{$good}}}}" "text after the JSON value"
case_ number_string "{$good, \"sampling\": {\"num_iter\": \"4\"}}" "'sampling.num_iter' must be a JSON number, not the string \"4\""
case_ hex_string "{$good, \"sampling\": {\"cfg\": \"0x2\"}}" "'sampling.cfg' must be a JSON number, not the string \"0x2\""
case_ nul_in_sampler "{$good, \"sampling\": {\"diff_sampler\": \"DiSA\\u0000junk\"}}" "contains \\u0000"
case_ nul_in_dir "{$good, \"output_dir\": \"a\\u0000b\"}" "contains \\u0000"
case_ bad_utf8 "{$good, \"name\": \"$(printf 'caf\351')\"}" "invalid UTF-8 at byte offset"
# Names are folder names: nothing outside output_dir, nothing that reads as a flag.
case_ variant_dotdot "{$good, \"variants\": [{\"name\": \"..\"}]}" "'variants[0].name' must be 1..48 of A-Z a-z 0-9 . _ + -"
case_ variant_slash "{$good, \"variants\": [{\"name\": \"a/b\"}]}" "'variants[0].name' must be 1..48"
case_ variant_dash "{$good, \"variants\": [{\"name\": \"-x\"}]}" "not start with '.' or '-', got \"-x\""
case_ job_name "{$good, \"name\": \"../up\"}" "'name' must be 1..64"
# Size: refused before reading, with the limit named; a long label list before parsing.
head -c 9000000 /dev/zero | tr '\0' ' ' > "$T/big.json"
set +e; gen 1 "$T/big.json" --output_dir "$T/out-big" > "$T/big.log" 2>&1; st=$?; set -e
[ $st = 2 ] && grep -q "9000000 bytes, larger than the 8388608-byte limit" "$T/big.log" || { cat "$T/big.log"; fail "big job file: status $st"; }
awk 'BEGIN { printf "{\"model\": \"models/tiny-test.safetensors\", \"num_images\": 10, \"labels\": [0"; for (i = 0; i < 2100000; i++) printf ",1"; print "]}" }' > "$T/labels.json"
set +e; gen 1 "$T/labels.json" --output_dir "$T/out-labels" > "$T/labels.log" 2>&1; st=$?; set -e
[ $st = 2 ] && grep -q "has more than 2000000 elements" "$T/labels.log" || { cat "$T/labels.log"; fail "long labels: status $st"; }
[ ! -e "$T/out-labels" ] || fail "long labels: output folder created"
# output_dir: the same folder under two spellings; folders that cannot be made.
printf '{%s, "output_dir": "%s/same"}\n' "$good" "$T" > "$T/same1.json"
printf '{%s, "name": "other", "output_dir": "%s/same/"}\n' "$good" "$T" > "$T/same2.json"
set +e; gen 1 "$T/same1.json" "$T/same2.json" > "$T/same.log" 2>&1; st=$?; set -e
[ $st = 2 ] && grep -q "both write" "$T/same.log" || { cat "$T/same.log"; fail "same folder, two spellings: status $st"; }
[ ! -e "$T/same" ] || fail "same folder: created"
: > "$T/afile"
long=$(printf 'x%.0s' $(seq 300))
for bad in "$T/afile/sub" /proc/disa-x "$T/$long"; do
    set +e; gen 1 jobs/tiny-test.json --output_dir "$bad" > "$T/unw.log" 2>&1; st=$?; set -e
    [ $st = 2 ] && grep -q "'output_dir': " "$T/unw.log" || { cat "$T/unw.log"; fail "unwritable output_dir $bad: status $st"; }
done
# A refused sweep leaves nothing: the second folder holds another run, the first is untouched.
gen 1 jobs/tiny-test.json --output_dir "$T/sweep/b" --num_images 10 --quiet > /dev/null 2>&1 || fail "sweep setup run"
printf '{%s, "output_dir": "%s/sweep", "variants": [{"name": "a"}, {"name": "b", "sampling": {"cfg": 3.0}}]}\n' "$good" "$T" \
    > "$T/sweep.json"
set +e; gen 1 "$T/sweep.json" > "$T/sweep.log" 2>&1; st=$?; set -e
[ $st = 2 ] && grep -q "another configuration" "$T/sweep.log" || { cat "$T/sweep.log"; fail "refused sweep: status $st"; }
[ ! -e "$T/sweep/a" ] || fail "a refused sweep created $T/sweep/a"
cases=$((cases + 6))
# A model whose activations overflow while sampling (finite weights, refused at load only
# when not finite): the unit stops with a message naming it, the step and the tensor,
# exit 1, and no PNG of the unit is written.
python3 tests/tools/st_tamper.py models/tiny-test.safetensors "$T/overflow.st" \
    value:diffloss.net.input_proj.weight:0:3e38 value:diffloss.net.input_proj.weight:1:3e38 || fail "overflow fixture"
printf '{"name": "overflow", "model": "%s", "num_images": 10, "eval_bsz": 10, "sampling": {"num_iter": 2}}\n' \
    "$T/overflow.st" > "$T/overflow.json"
set +e; gen 1 "$T/overflow.json" --output_dir "$T/out-overflow" > "$T/overflow.log" 2>&1; st=$?; set -e
[ $st = 1 ] && grep -q "unit 0 of overflow: AR step 0: the diffusion head's sample x holds NaN" "$T/overflow.log" \
    || { cat "$T/overflow.log"; fail "overflow while sampling: status $st"; }
! ls "$T/out-overflow" | grep -q '\.png' || fail "overflow: PNGs written for a failed unit"
# The same under a DPM solver (its per-row head loop) and under the adaptive strategy.
k=0
for s in "--diff_sampler DPM_Solver++" "--diff_sampler DiSA --diff_annealing_strategy adaptive --diff_budget 10"; do
    k=$((k + 1))
    set +e; gen 1 "$T/overflow.json" --output_dir "$T/out-overflow$k" $s > "$T/overflow$k.log" 2>&1; st=$?; set -e
    [ $st = 1 ] && grep -q "unit 0 of overflow: AR step 0: the diffusion head's sample x holds NaN" "$T/overflow$k.log" \
        || { cat "$T/overflow$k.log"; fail "overflow while sampling ($s): status $st"; }
    ! ls "$T/out-overflow$k" | grep -q '\.png' || fail "overflow ($s): PNGs written for a failed unit"
done
cases=$((cases + 3))

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
echo "ok: $cases bad job specs and flags, other-config refusal, --restart"
