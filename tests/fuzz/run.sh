#!/bin/sh
# make fuzz: builds the libFuzzer targets with clang (AddressSanitizer + UBSan, coverage
# instrumented libdisa in build-fuzz/, separate from build/) and runs each for
# FUZZ_SECONDS (default 60) from the repository root, starting from the committed
# corpus tests/fuzz/<target>/. New inputs go to build-fuzz/corpus/<target>/ (not
# committed); a crash leaves build-fuzz/crash-<target>-* and stops with status 1. To keep
# a crash as a regression test, fix it and copy the file into tests/fuzz/<target>/:
# build/tests/test_fuzz_replay (make test) replays every committed file.
#   FUZZ_SECONDS=10 FUZZ_TARGETS="png npy" sh tests/fuzz/run.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-safetensors job npy png}
FB=build-fuzz
CC=${FUZZ_CC:-clang}
sh tools/deps.sh fuzz || exit 2  # clang + libclang-rt-14-dev (libFuzzer), apt-get as root
if ! command -v "$CC" > /dev/null; then
    echo "fuzz: $CC not found: sh tools/deps.sh fuzz (installs clang and libclang-rt-14-dev)"; exit 2
fi
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
make --no-print-directory BUILD=$FB CC="$CC" CFLAGS="-O1 -g $SAN -fsanitize=fuzzer-no-link -Wno-unknown-attributes" "$FB/lib/libdisa.a" ||
    exit 2
PKG_CFLAGS=$(pkg-config --cflags libpng libcjson)
PKG_LIBS=$(pkg-config --libs libpng libcjson)
MPI_LIBS=$(mpicc --showme:link 2>/dev/null)
mkdir -p "$FB/fuzz"
for t in $FUZZ_TARGETS; do
    # shellcheck disable=SC2086
    "$CC" -O1 -g $SAN -fsanitize=fuzzer -Iinclude -Itests/fuzz -D_GNU_SOURCE $PKG_CFLAGS \
        -Wall -Wextra -Werror -Wno-unused-parameter -o "$FB/fuzz/fuzz_$t" "tests/fuzz/fuzz_$t.c" tests/fuzz/fuzz_util.c \
        "$FB/lib/libdisa.a" -lzip $PKG_LIBS -lopenblas $MPI_LIBS -lz -lm -lpthread || exit 2
done
status=0
summary=""
for t in $FUZZ_TARGETS; do
    mkdir -p "$FB/corpus/$t"
    log=$FB/fuzz/$t.log
    echo "fuzz: $t for $FUZZ_SECONDS s (log $log)"
    ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
        "$FB/fuzz/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$FB/crash-$t-" \
        "$FB/corpus/$t" "tests/fuzz/$t" > "$log" 2>&1
    st=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1)
    line="$t: ${execs:-?} executions, ${cov:-cov: ?}, ${ft:-ft: ?}, corpus $(ls "$FB/corpus/$t" | wc -l) files"
    if [ $st != 0 ]; then
        status=1
        line="$line: FAILED (status $st): $(ls "$FB"/crash-"$t"-* 2>/dev/null | tr '\n' ' ')"
        grep -E 'ERROR|SUMMARY|runtime error|#[0-9]+ 0x' "$log" | head -n 20
    fi
    echo "fuzz: $line"
    summary="$summary$line
"
done
printf '%s' "$summary"
exit $status
