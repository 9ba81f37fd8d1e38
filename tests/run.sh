#!/bin/sh
# Runs the test suite and ends with one line "N passed, N failed".
#   tests/run.sh [all|unit|parity|e2e]...      (BUILD=build by default)
# unit:   every build/tests/test_* (cmocka); each cmocka test counts once.
# parity: build/bin/disa-parity on every tests/golden/*.safetensors; each file counts once.
# e2e:    every tests/e2e/*.sh; each script counts once (exit 0 = pass).
BUILD=${BUILD:-build}
export BUILD
LOG=$BUILD/test-logs
mkdir -p "$LOG"
pass=0
fail=0
failed_names=""

record() { # name status
    if [ "$2" = 0 ]; then pass=$((pass + 1)); echo "PASS $1"
    else fail=$((fail + 1)); failed_names="$failed_names $1"; echo "FAIL $1"; fi
}

run_unit() {
    for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        "$t" > "$LOG/$name.log" 2>&1
        st=$?
        p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$LOG/$name.log" | tail -n 1)
        f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$LOG/$name.log" | tail -n 1)
        p=${p:-0}; f=${f:-0}
        # A crash before cmocka's summary still counts as a failure.
        if [ "$st" != 0 ] && [ "$f" = 0 ]; then f=1; fi
        pass=$((pass + p)); fail=$((fail + f))
        if [ "$f" != 0 ]; then
            failed_names="$failed_names $name"
            echo "FAIL $name ($p passed, $f failed; log $LOG/$name.log)"
            grep -E '^\[  (FAILED|  ERROR)|^\[  ERROR|error:|Assert|ERROR' "$LOG/$name.log" | head -20
        else
            echo "PASS $name ($p tests)"
        fi
    done
}

run_parity() {
    for g in tests/golden/*.safetensors; do
        [ -f "$g" ] || continue
        "$BUILD"/bin/disa-parity "$g" > "$LOG/parity.$(basename "$g").log" 2>&1
        st=$?
        if [ $st != 0 ]; then cat "$LOG/parity.$(basename "$g").log"; fi
        record "parity $(basename "$g" .safetensors)" $st
    done
}

run_e2e() {
    for s in tests/e2e/*.sh; do
        [ -f "$s" ] || continue
        name=$(basename "$s" .sh)
        start=$(date +%s)
        sh "$s" > "$LOG/e2e.$name.log" 2>&1
        st=$?
        end=$(date +%s)
        if [ $st != 0 ]; then tail -n 30 "$LOG/e2e.$name.log"; fi
        # A test that could not run here says so on a line starting with SKIP and exits 77.
        if [ $st = 77 ]; then echo "SKIP e2e $name: $(grep '^SKIP' "$LOG/e2e.$name.log" | head -n 1)"; continue; fi
        record "e2e $name ($((end - start)) s)" $st
    done
}

[ $# = 0 ] && set -- all
for part in "$@"; do
    case $part in
        all) run_unit; run_parity; run_e2e ;;
        unit) run_unit ;;
        parity) run_parity ;;
        e2e) run_e2e ;;
        *) echo "tests/run.sh: unknown part '$part' (all|unit|parity|e2e)" >&2; exit 2 ;;
    esac
done
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
