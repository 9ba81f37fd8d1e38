#!/bin/sh
# Provenance per unit. A run made under OPENBLAS_CORETYPE=Haswell, cut after 5 of its 10
# units (as a crash leaves it) and resumed under SkylakeX (this machine has AVX-512)
# records two machine signatures, names each unit's in the ledger, counts them in
# summary.json and the table and warns once that the images are not bitwise reproducible
# across them. require_uniform_hardware refuses that resume, and ranks that differ, with
# exit 2 and nothing written. A ledger and run.json written before signatures existed
# still resume.
set -eu
. tests/e2e/lib.inc
A="jobs/tiny-test.json --num_images 20 --eval_bsz 2 --threads 1 --progress 0"

grep -q avx512f /proc/cpuinfo || { echo "SKIP provenance: forcing the SkylakeX core needs AVX-512"; exit 77; }
# Every file of a folder with its bytes, to see that a refusal wrote nothing.
snapshot() { find "$1" -type f | sort | xargs md5sum; }
# The lines of summary.json / the log a check needs, shown when it fails.
need() { # FILE PATTERN WHAT
    grep -qF -- "$2" "$1" || { cat "$1"; fail "$3: '$2' not in $1"; }
}

OPENBLAS_CORETYPE=Haswell gen 2 $A --output_dir "$T/mix" > "$T/h.log" 2>&1 || { cat "$T/h.log"; fail "Haswell run"; }
[ "$(grep -c ' sig 0$' "$T/mix/manifest")" = 10 ] || { cat "$T/mix/manifest"; fail "every unit should name signature 0"; }
need "$T/mix/run.json" '"rank_signatures":	[0, 0],' "both ranks share one signature"
need "$T/h.log" '20 images on machine signature 0: ' "the table's signature line"
# A crash after units 0-4: their lines stay, the others' PNGs are recomputed.
grep -E '^unit [0-4] ' "$T/mix/manifest" > "$T/m" && mv "$T/m" "$T/mix/manifest"
cp -r "$T/mix" "$T/uni"
cp -r "$T/mix" "$T/old"

# Resume under SkylakeX: a second signature, appended to run.json's table.
OPENBLAS_CORETYPE=SkylakeX gen 2 $A --output_dir "$T/mix" > "$T/s.log" 2>&1 || { cat "$T/s.log"; fail "SkylakeX resume"; }
need "$T/s.log" "resuming: 5 of 10 units done" "resume"
[ "$(grep -c ' sig 1$' "$T/mix/manifest")" = 5 ] || { cat "$T/mix/manifest"; fail "units 5-9 should name signature 1"; }
[ "$(grep -c '"host":' "$T/mix/run.json")" = 2 ] || { cat "$T/mix/run.json"; fail "run.json should list 2 signatures"; }
need "$T/mix/run.json" '"rank_signatures":	[1, 1],' "run.json's ranks"
need "$T/mix/summary.json" '{"sig": 0, "images": 10, "kernels": "Haswell/fp32/1 thread", "host": ' "summary.json"
need "$T/mix/summary.json" '{"sig": 1, "images": 10, "kernels": "SkylakeX/fp32", "host": ' "summary.json"
warning='images 0-9 on Haswell/fp32/1 thread, 10-19 on SkylakeX/fp32: not bitwise reproducible across them'
need "$T/mix/summary.json" "\"mixed_kernels_warning\": \"$warning\"" "summary.json's warning"
[ "$(grep -c "WARN tiny-test: $warning" "$T/s.log")" = 1 ] || { cat "$T/s.log"; fail "exactly one warning expected"; }
need "$T/s.log" '10 images on machine signature 1: ' "the table's signature lines"
check_complete "$T/mix" 20

# require_uniform_hardware: the same resume is refused, nothing written.
snapshot "$T/uni" > "$T/before"
set +e
OPENBLAS_CORETYPE=SkylakeX gen 2 $A --output_dir "$T/uni" --require_uniform_hardware > "$T/u.log" 2>&1
st=$?
set -e
[ "$st" = 2 ] || { cat "$T/u.log"; fail "require_uniform_hardware should exit 2, got $st"; }
need "$T/u.log" "tiny-test: require_uniform_hardware: 5 units of $T/uni/manifest (from unit 0) were made on machine signature 0" "refusal"
need "$T/u.log" "(recorded vs now: OpenBLAS core Haswell vs SkylakeX); resume on hardware like the recorded one" "refusal"
snapshot "$T/uni" | cmp -s - "$T/before" || fail "the refused run changed the folder"
# On the recorded hardware it resumes (the job file's option, as the flag).
sed 's/"seed": 7,/"seed": 7, "require_uniform_hardware": true,/' jobs/tiny-test.json > "$T/uniform.json"
OPENBLAS_CORETYPE=Haswell gen 1 "$T/uniform.json" --num_images 20 --eval_bsz 2 --threads 1 --output_dir "$T/uni" \
    > "$T/u2.log" 2>&1 || { cat "$T/u2.log"; fail "uniform resume on the recorded hardware"; }
[ "$(grep -c ' sig 0$' "$T/uni/manifest")" = 10 ] || { cat "$T/uni/manifest"; fail "one signature expected"; }
need "$T/uni/summary.json" '"mixed_kernels": false' "summary.json"

# Ranks that differ now (one per core type): refused with the option, before any folder exists;
# without it the run records both and warns.
het() { # OUT [FLAG]
    tools/mpirun.sh 1 env OPENBLAS_CORETYPE=Haswell "$B/disa-gen" $A --output_dir "$1" ${2:-} \
        : -np 1 env OPENBLAS_CORETYPE=SkylakeX "$B/disa-gen" $A --output_dir "$1" ${2:-}
}
set +e
het "$T/het" --require_uniform_hardware > "$T/het.log" 2>&1
st=$?
set -e
[ "$st" = 2 ] || { cat "$T/het.log"; fail "differing ranks should exit 2, got $st"; }
need "$T/het.log" "tiny-test: require_uniform_hardware: rank 1 differs from rank 0 (rank 1 vs rank 0: OpenBLAS core SkylakeX vs Haswell); nothing was written" "refusal"
[ ! -e "$T/het" ] || fail "the refused run created its folder"
het "$T/het" > "$T/het.log" 2>&1 || { cat "$T/het.log"; fail "run on differing ranks"; }
need "$T/het/run.json" '"rank_signatures":	[0, 1],' "run.json's ranks"
need "$T/het.log" "tiny-test: rank 1 runs SkylakeX/fp32, rank 0 Haswell/fp32/1 thread" "the start's note"
[ "$(grep -c 'WARN tiny-test: images .*: not bitwise reproducible across them' "$T/het.log")" = 1 ] ||
    { cat "$T/het.log"; fail "exactly one warning expected"; }
need "$T/het/summary.json" '"mixed_kernels": true' "summary.json"
check_complete "$T/het" 20

# The format before signatures: ledger lines end at the count, run.json has no table.
sed 's/ sig [0-9]*$//' "$T/old/manifest" > "$T/m" && mv "$T/m" "$T/old/manifest"
awk '/"signatures":/ { skip = 1 } !skip && !/"rank_signatures":/ { print } skip && /^\t\t}\],$/ { skip = 0 }' \
    "$T/old/run.json" > "$T/r" && mv "$T/r" "$T/old/run.json"
! grep -q 'signatures' "$T/old/run.json" || fail "could not make an old-format run.json"
OPENBLAS_CORETYPE=Haswell gen 2 $A --output_dir "$T/old" > "$T/o.log" 2>&1 || { cat "$T/o.log"; fail "old-format resume"; }
need "$T/o.log" "resuming: 5 of 10 units done" "old-format resume"
[ "$(grep -c ' count 2$' "$T/old/manifest")" = 5 ] && [ "$(grep -c ' sig 0$' "$T/old/manifest")" = 5 ] ||
    { cat "$T/old/manifest"; fail "old lines kept, new ones with their signature"; }
need "$T/old/summary.json" '"images_without_signature": 10,' "summary.json"
need "$T/old/summary.json" '{"sig": 0, "images": 10, ' "summary.json"
same_pngs "$T/old" "$T/uni"
check_complete "$T/old" 20
echo ok
