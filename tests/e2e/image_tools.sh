#!/bin/sh
# disa-npz and disa-grid on a small results folder (tests/data/png: five 8x6 RGB PNGs
# written by PIL, indices 0 1 2 3 7, tEXt classes 3 1 3 0 1): outputs exist with the
# expected sizes, bad usage exits 2, failures exit 1 and leave nothing under the final
# name (nor change an earlier output), no temporary files remain. The contents of the
# outputs are checked byte for byte by tests/unit/test_image.c.
set -eu
B=${BUILD:-build}/bin
fail() { echo "FAIL: $*"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/disa-e2e-image-XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir "$T/run"
cp tests/data/png/*.png "$T/run/"
echo "not an image" > "$T/run/notes.txt"

# expect_status WANT CMD...: run CMD, show its output, fail unless it exits WANT.
expect_status() {
    want=$1; shift
    set +e; "$@" > "$T/out.log" 2>&1; s=$?; set -e
    cat "$T/out.log"
    [ "$s" = "$want" ] || fail "'$*' exited $s, expected $want"
}
size() { wc -c < "$1" | tr -d ' '; }
# Big-endian u32 at byte offset $2 of file $1 (PNG IHDR width at 16, height at 20).
u32be() { od -An -tu1 -j"$2" -N4 "$1" | awk '{print (($1 * 256 + $2) * 256 + $3) * 256 + $4}'; }
is_png() { [ "$(od -An -c -j1 -N3 "$1" | tr -d ' ')" = "PNG" ]; }

# ---- disa-npz
expect_status 0 $B/disa-npz "$T/run" "$T/batch.npz"
grep -q "arr_0 uint8 \[5, 6, 8, 3\], arr_1 int64 labels" "$T/out.log" || fail "disa-npz summary"
grep -q "3 indices between 0 and 7 have no image" "$T/out.log" || fail "gap note"
[ "$(od -An -tx1 -N4 "$T/batch.npz" | tr -d ' ')" = "504b0304" ] || fail "batch.npz is not a zip"
# arr_0 (128-byte .npy header + 5*6*8*3) and arr_1 (128 + 5*8) stored, plus < 1 KB of zip structure.
n=$(size "$T/batch.npz")
[ "$n" -gt 1016 ] && [ "$n" -lt 2040 ] || fail "batch.npz has $n bytes"
expect_status 0 $B/disa-npz "$T/run" "$T/nolabels.npz" --labels none
[ "$(size "$T/nolabels.npz")" -lt "$n" ] || fail "--labels none should drop arr_1"

expect_status 2 $B/disa-npz
expect_status 2 $B/disa-npz "$T/run"
expect_status 2 $B/disa-npz "$T/run" "$T/x.npz" --labels maybe
expect_status 2 $B/disa-npz "$T/run" "$T/x.npz" --bogus
expect_status 2 $B/disa-npz "$T/nosuch" "$T/x.npz"
grep -q "cannot open folder" "$T/out.log" || fail "missing folder message"
[ ! -e "$T/x.npz" ] || fail "x.npz exists after a failure"
expect_status 2 $B/disa-npz "$T/run" "$T/run/00000.png/x.npz"
[ ! -e "$T/run/00000.png/x.npz" ] || fail "output under a file"
# An image of another size fails the whole batch; the earlier batch.npz stays as it was.
cp "$T/batch.npz" "$T/batch.before"
mkdir "$T/mixed"
cp tests/data/png/00000.png "$T/mixed/"
cp tests/data/png_misc/gray16.png "$T/mixed/00001.png"
expect_status 2 $B/disa-npz "$T/mixed" "$T/batch.npz"
grep -q "image is 5 x 4" "$T/out.log" || fail "size mismatch message"
cmp -s "$T/batch.npz" "$T/batch.before" || fail "a failed run changed batch.npz"
# Labels are required unless --labels none: gray16.png has no class.
mkdir "$T/nolabel"
cp tests/data/png_misc/gray16.png "$T/nolabel/00000.png"
expect_status 2 $B/disa-npz "$T/nolabel" "$T/nl.npz"
grep -q "no 'class' text" "$T/out.log" || fail "missing class message"
expect_status 0 $B/disa-npz "$T/nolabel" "$T/nl.npz" --labels none

# ---- disa-grid
expect_status 0 $B/disa-grid "$T/run" "$T/grid.png" --cols 2
is_png "$T/grid.png" || fail "grid.png is not a PNG"
# 2 columns, 3 rows of 8x6 cells, 2-pixel separators.
[ "$(u32be "$T/grid.png" 16)" = 18 ] || fail "grid width $(u32be "$T/grid.png" 16), expected 18"
[ "$(u32be "$T/grid.png" 20)" = 22 ] || fail "grid height $(u32be "$T/grid.png" 20), expected 22"
expect_status 0 $B/disa-grid "$T/run" "$T/byclass.png" --rows-by class --cols 3 --sep 1
grep -q "3 rows x 3 cols by class, 5 images" "$T/out.log" || fail "class grid summary"
[ "$(u32be "$T/byclass.png" 16)" = 26 ] || fail "class grid width"
[ "$(u32be "$T/byclass.png" 20)" = 20 ] || fail "class grid height"
expect_status 0 $B/disa-grid "$T/run" "$T/two.png" --max 2 --cols=4 --sep 0
[ "$(u32be "$T/two.png" 16)" = 32 ] && [ "$(u32be "$T/two.png" 20)" = 6 ] || fail "--max 2 sheet size"

# Enlarged and labelled: the 26 x 20 class sheet at 3x inside gnuplot's frame (110 px of
# labels on the left, 40 above, 6 right and below).
expect_status 0 $B/disa-grid "$T/run" "$T/framed.png" --rows-by class --cols 3 --sep 1 --scale 3 --labels a,b,c --title t
[ "$(u32be "$T/framed.png" 16)" = $((110 + 26 * 3 + 6)) ] || fail "framed width $(u32be "$T/framed.png" 16)"
[ "$(u32be "$T/framed.png" 20)" = $((40 + 20 * 3 + 6)) ] || fail "framed height $(u32be "$T/framed.png" 20)"
expect_status 2 $B/disa-grid "$T/run" "$T/g.png" --labels a,b
grep -q -- "--labels names classes: it needs --rows-by class" "$T/out.log" || fail "--labels without --rows-by class"
expect_status 2 $B/disa-grid "$T/run"
expect_status 2 $B/disa-grid "$T/run" "$T/g.png" --cols 0
expect_status 2 $B/disa-grid "$T/run" "$T/g.png" --rows-by label
expect_status 2 $B/disa-grid "$T/run" "$T/g.png" --max
expect_status 2 $B/disa-grid "$T/nolabel" "$T/g.png" --rows-by class
[ ! -e "$T/g.png" ] || fail "g.png exists after a failure"
cp "$T/grid.png" "$T/grid.before"
expect_status 2 $B/disa-grid "$T/mixed" "$T/grid.png"
cmp -s "$T/grid.png" "$T/grid.before" || fail "a failed run changed grid.png"

left=$(find "$T" -name '*.tmp*' | wc -l)
[ "$left" = 0 ] || fail "$left temporary files left behind"
echo "ok"
