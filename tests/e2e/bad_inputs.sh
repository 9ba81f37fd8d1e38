# Walks tests/bad_inputs.md: builds the fixtures it names, writes its job files, runs
# every case row (command | status | message fragment) and checks the status, the
# message, no crash (status >= 128, sanitizer report), no hang (30 s) and nothing left
# in $O. Then replays the committed fuzz corpora (build/tests/test_fuzz_replay).
. tests/e2e/lib.inc
MD=tests/bad_inputs.md
BUILD=${BUILD:-build}
O=$T/o
J=$T/jobs
GEN="$B/disa-gen"
MPIGEN="tools/mpirun.sh 1 $B/disa-gen"
# Under BUILD=build-asan: memory still held at an error exit is not a failure here.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
export B T O J GEN MPIGEN ASAN_OPTIONS
mkdir -p "$O" "$J" "$T/badpng" "$T/emptydir" "$T/fifodir" "$T/dirpng/00000.png"
mkfifo "$T/fifodir/00000.png"
TAMPER="python3 tests/tools/st_tamper.py models/tiny-test.safetensors"
$TAMPER "$T/nan.st" value:encoder_blocks.0.attn.qkv.weight:5:nan && $TAMPER "$T/inf.st" value:class_emb.weight:0:inf &&
$TAMPER "$T/fnan.st" value:diffloss.net.final_layer.linear.bias:1:nan && $TAMPER "$T/eps.st" config:norm_eps:-1 &&
$TAMPER "$T/depth.st" config:encoder_depth:1 && $TAMPER "$T/ukey.st" config:colour:3 &&
$TAMPER "$T/extra.st" extra:foo.weight && $TAMPER "$T/trail.st" 'trailer:}}}' &&
$TAMPER "$T/overflow.st" value:diffloss.net.input_proj.weight:0:3e38 value:diffloss.net.input_proj.weight:1:3e38 \
    || fail "fixtures made by tests/tools/st_tamper.py"

# Fixtures (the table "Names used in the commands").
head -c 3000 models/tiny-test.safetensors > "$T/trunc.st"
printf 'hello\n' > "$T/text.st"
: > "$T/empty.st"
LC_ALL=C sed 's/\\"class_num\\":10/\\"class_num\\":11/' models/tiny-test.safetensors > "$T/shape.st"
cmp -s models/tiny-test.safetensors "$T/shape.st" && fail "fixture shape.st: class_num not found in the header"
head -c 500 models/fmnist-test-stats.npz > "$T/trunc.npz"
"$B/disa-mkmodel" --out "$T/kl.st" --seed 5 --config '{"format":"disa-mar-1","img_size":64,"vae_stride":16,
 "patch_size":1,"vae_embed_dim":16,"encoder_embed_dim":32,"encoder_depth":1,"encoder_num_heads":4,"decoder_embed_dim":32,
 "decoder_depth":1,"decoder_num_heads":4,"mlp_ratio":4,"buffer_size":4,"class_num":10,"diffloss_d":1,"diffloss_w":32,
 "tokenizer":"kl16"}' > /dev/null 2>&1 || fail "fixture kl.st"
"$B/disa-mkmodel" --out "$T/xar.st" --seed 5 --config '{"format":"disa-xar-1","img_size":8,"vae_stride":1,"patch_size":2,
 "vae_embed_dim":1,"encoder_embed_dim":16,"encoder_depth":1,"encoder_num_heads":2,"decoder_embed_dim":16,"decoder_depth":1,
 "decoder_num_heads":2,"mlp_ratio":4,"class_num":10,"clusters":4,"tokenizer":"patch"}' > /dev/null 2>&1 || fail "fixture xar.st"
LC_ALL=C sed 's/\\"class_num\\":10/\\"class_num\\":11/' "$T/xar.st" > "$T/xarshape.st"
cmp -s "$T/xar.st" "$T/xarshape.st" && fail "fixture xarshape.st: class_num not found in the header"
"$B/disa-mkmodel" --out "$T/flowar.st" --seed 5 --config '{"format":"disa-flowar-1","img_size":64,"vae_stride":16,
 "patch_size":1,"vae_embed_dim":16,"encoder_embed_dim":32,"encoder_depth":1,"encoder_num_heads":2,"decoder_embed_dim":32,
 "decoder_depth":1,"decoder_num_heads":2,"buffer_size":0,"class_num":10,"diffloss_d":1,"diffloss_w":64,
 "scale":[1,2,4]}' > /dev/null 2>&1 || fail "fixture flowar.st"
"$B/disa-sample" --model models/tiny-test.safetensors --class 1 --num_images 3 --num_iter 2 --out "$T/png28" \
    > /dev/null 2>&1 || fail "fixture png28"
rm -f "$T/png28/tokens.npy"
head -c 60 "$T/png28/00001.png" > "$T/badpng/00000.png"
printf 'not a png\n' > "$T/badpng/00001.png"

# Split the markdown rows: `\|` inside a cell is a literal bar; backticks are stripped.
rows() { # SECTION-HEADING -> tab-separated cells of that section's table rows
    awk -v sec="$1" '
        /^## / { on = ($0 == "## " sec); next }
        on && /^\| / && !/^\|---/ {
            gsub(/\\\|/, "\001"); sub(/^\| /, ""); sub(/ \|$/, "")
            n = split($0, c, / \| /); out = ""
            for (i = 1; i <= n; i++) {
                v = c[i]; gsub(/\001/, "|", v)
                if (v ~ /^`.*`$/) v = substr(v, 2, length(v) - 2)
                out = out (i > 1 ? "\t" : "") v
            }
            print out
        }' "$MD"
}
tab=$(printf '\t')
rows "Job files" | tail -n +2 | while IFS=$tab read -r name content; do
    printf '%s\n' "$content" | sed "s|\$T|$T|g" > "$J/$name.json"
done
[ -f "$J/good.json" ] || fail "no job files parsed from $MD"

n=0
rows "Cases" | tail -n +2 > "$T/cases.tsv"
total=$(wc -l < "$T/cases.tsv")
[ "$total" -gt 100 ] || fail "only $total cases parsed from $MD"
while IFS=$tab read -r num cmd want frag; do
    frag=$(printf '%s' "$frag" | sed "s|\$T|$T|g")
    rm -rf "$O" && mkdir -p "$O"
    timeout 30 sh -c "$cmd" > "$T/out" 2>&1 < /dev/null
    st=$?
    [ $st = 124 ] && fail "case $num: hung (30 s): $cmd"
    [ $st -ge 128 ] && { cat "$T/out"; fail "case $num: crashed (status $st): $cmd"; }
    grep -qE 'Sanitizer|runtime error' "$T/out" && { cat "$T/out"; fail "case $num: sanitizer report: $cmd"; }
    [ "$st" = "$want" ] || { cat "$T/out"; fail "case $num: exit status $st, expected $want: $cmd"; }
    grep -qF -- "$frag" "$T/out" || { cat "$T/out"; fail "case $num: message lacks '$frag': $cmd"; }
    left=$(find "$O" -type f | head -n 3)
    [ -z "$left" ] || fail "case $num: left files behind: $left"
    ls "$T/png28" | grep -q tmp && fail "case $num: temporary file in an input folder"
    n=$((n + 1))
    echo "ok $num ($st): $(grep -F -- "$frag" "$T/out" | head -n 1 | cut -c1-160)"
done < "$T/cases.tsv"

# The fuzz corpora: every committed input through the same entry points.
"${BUILD}/tests/test_fuzz_replay" > "$T/replay.log" 2>&1 || { cat "$T/replay.log"; fail "fuzz corpus replay"; }
grep '^replay' "$T/replay.log"
echo "bad inputs: $total cases of $MD passed, fuzz corpora replayed"
