#!/bin/sh
# The OpenBLAS core-type fix: a generic core on an AVX2/AVX-512 CPU is replaced by a
# re-exec with OPENBLAS_CORETYPE set (also under mpirun, before MPI_Init), and a core the
# user chose always wins. The same re-exec sets OPENBLAS_THREAD_TIMEOUT unless the user did
# (test_core checks OpenBLAS's workers then sleep). DISA_TEST_BLAS_CORENAME pretends OpenBLAS detected a core.
set -eu
B=${BUILD:-build}/bin
fail() { echo "FAIL: $*"; exit 1; }

out=$(env -u OPENBLAS_CORETYPE $B/disa-info)
echo "$out"
echo "$out" | grep -q "(detected)" || fail "plain run should report the detected core"
echo "$out" | grep -q "^OpenBLAS idle threads: spin 2^20 cycles, then sleep (OPENBLAS_THREAD_TIMEOUT=20, disa's default)" ||
    fail "plain run should set the idle-thread timeout"
out=$(env -u OPENBLAS_CORETYPE OPENBLAS_THREAD_TIMEOUT=24 $B/disa-info)
echo "$out" | grep -q "(OPENBLAS_THREAD_TIMEOUT=24, set by you)" || fail "the user's timeout must win"
echo "$out" | grep -q "(detected)" || fail "a user timeout alone must not change the core"

avx2=$(echo "$out" | sed -n 's/.* avx2 \([01]\).*/\1/p')
avx512=$(echo "$out" | sed -n 's/.* avx512vl \([01]\).*/\1/p')
out=$(env -u OPENBLAS_CORETYPE DISA_TEST_BLAS_CORENAME=Prescott $B/disa-info)
echo "$out"
if [ "$avx2" = 1 ]; then
    want=Haswell
    [ "$avx512" = 1 ] && want=SkylakeX
    echo "$out" | grep -q "OpenBLAS core $want, .*forced by disa: OpenBLAS detected Prescott" ||
        fail "expected a re-exec to $want"
else
    echo "$out" | grep -q "(detected)" || fail "no AVX2: the detected core must stay"
fi

out=$(OPENBLAS_CORETYPE=Haswell DISA_TEST_BLAS_CORENAME=Prescott $B/disa-info)
echo "$out"
echo "$out" | grep -q "OpenBLAS core Haswell, .*(set by OPENBLAS_CORETYPE)" || fail "user choice must win"

out=$(OPENBLAS_CORETYPE=NoSuchCore $B/disa-info)
echo "$out"
echo "$out" | grep -q "OPENBLAS_CORETYPE=NoSuchCore was not accepted" || fail "bad user core must be reported"

# Under mpirun: both ranks run the re-exec before MPI_Init and still form one world.
out=$(env -u OPENBLAS_CORETYPE DISA_TEST_BLAS_CORENAME=Prescott tools/mpirun.sh 2 $B/disa-info --mpi 2>&1)
echo "$out"
n=$(echo "$out" | grep -c "^rank [01]/2: OpenBLAS core ")
[ "$n" = 2 ] || fail "expected 2 ranks of a world of 2, got $n lines"
if [ "$avx2" = 1 ]; then
    [ "$(echo "$out" | grep -c 'forced by disa')" = 2 ] || fail "each rank should have re-executed"
fi
echo "ok"
