#!/bin/sh
# Every program follows the same command-line rules (include/disa/flags.h): --help and -h
# print the usage on stdout and exit 0 with nothing on stderr; an unknown flag, also as the
# last argument, is named as unknown and exits 2; a value that is itself a flag is refused.
# The programs are found in $B, so a new program is checked without editing this file.
set -eu
. tests/e2e/lib.inc
n=0
for p in "$B"/disa-*; do
    [ -x "$p" ] || continue
    name=$(basename "$p")
    for h in --help -h; do
        set +e; "$p" $h > "$T/out" 2> "$T/err"; s=$?; set -e
        [ "$s" = 0 ] || fail "$name $h exited $s: $(cat "$T/err")"
        grep -q "usage: $name" "$T/out" || fail "$name $h: no 'usage: $name' on stdout: $(cat "$T/out")"
        [ ! -s "$T/err" ] || fail "$name $h wrote to stderr: $(cat "$T/err")"
    done
    # disa-info and disa-parity take no value flags; the others are given a first
    # argument they accept so the unknown flag comes last.
    set +e; "$p" --no-such-flag > "$T/out" 2>&1; s=$?; set -e
    [ "$s" = 2 ] || fail "$name --no-such-flag exited $s: $(cat "$T/out")"
    grep -q "no-such-flag" "$T/out" || fail "$name: the unknown flag is not named: $(cat "$T/out")"
    grep -q "needs a value" "$T/out" && fail "$name: an unknown flag reported as needing a value: $(cat "$T/out")"
    n=$((n + 1))
done
[ "$n" -ge 9 ] || fail "only $n programs found in $B"

expect2() { # FRAGMENT CMD...: exit status 2 and FRAGMENT in the output
    frag=$1; shift
    set +e; "$@" > "$T/out" 2>&1; s=$?; set -e
    [ "$s" = 2 ] || fail "'$*' exited $s, expected 2: $(cat "$T/out")"
    grep -qF -- "$frag" "$T/out" || fail "'$*': message lacks '$frag': $(cat "$T/out")"
}
# A forgotten value is not taken from the next flag (no folder named '--num_images').
expect2 "--output_dir needs a value, got the flag '--num_images'" \
    "$B/disa-gen" jobs/tiny-test.json --output_dir --num_images 20
[ ! -e ./--num_images ] || fail "disa-gen created a folder named --num_images"
expect2 "--out needs a value, got the flag '--seed'" \
    "$B/disa-sample" --model models/tiny-test.safetensors --class 1 --out --seed 3
[ ! -e ./--seed ] || fail "disa-sample created a folder named --seed"
# An unknown last flag is unknown, not a flag without a value.
expect2 "unknown flag '--zzz'" "$B/disa-gen" jobs/tiny-test.json --zzz
expect2 "unknown flag '--zzz'" "$B/disa-sample" --model models/tiny-test.safetensors --class 1 --zzz
expect2 "unknown flag '--zzz'" "$B/disa-mkmodel" --out "$T/m.st" --zzz
expect2 "unknown flag '--zzz'" "$B/disa-bench" --model mar_base --zzz
expect2 "unknown flag '--zzz'" "$B/disa-bench" --model flowar_small --zzz
# FlowAR's disa-bench section parses its own flags and follows the same rules.
for h in --help -h; do
    set +e; "$B/disa-bench" --model flowar_small $h > "$T/out" 2> "$T/err"; s=$?; set -e
    [ "$s" = 0 ] && grep -q "usage: disa-bench --model flowar_small" "$T/out" && [ ! -s "$T/err" ] ||
        fail "disa-bench --model flowar_small $h: status $s, stdout '$(cat "$T/out")', stderr '$(cat "$T/err")'"
done
# The explicit form takes a value that starts with dashes.
"$B/disa-mkmodel" --out="$T/--odd.st" --config '{"format":"disa-mar-1","img_size":4,"vae_stride":1,"patch_size":2,
 "vae_embed_dim":1,"encoder_embed_dim":8,"encoder_depth":1,"encoder_num_heads":2,"decoder_embed_dim":8,"decoder_depth":1,
 "decoder_num_heads":2,"buffer_size":1,"class_num":2,"diffloss_d":1,"diffloss_w":8,"tokenizer":"patch"}' > /dev/null \
    || fail "--out=--odd.st refused"
[ -f "$T/--odd.st" ] || fail "--out=--odd.st not written"
echo "cli: $n programs answer --help and -h on stdout with status 0 and name unknown flags"
