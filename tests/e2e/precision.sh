#!/bin/sh
# --precision: bf16 sampling (oneDNN) on the tiny model gives tokens close to, but not
# equal to, the fp32 tokens, with no reorder once sampling runs; auto picks bf16 where
# it can run and fp32 elsewhere (DISA_TEST_NO_BF16), in disa-sample, disa-info and a
# disa-gen job, whose run.json records what ran; bad values get one message and exit 2;
# bf16 (and auto become bf16) refuses the DPM solvers and the adaptive strategy.
# On a CPU without AVX512_BF16 the bf16 runs must fail with a message saying so.
set -eu
. tests/e2e/lib.inc
PY=${PYTHON:-/usr/bin/python3}
M=models/tiny-test.safetensors
S="--model $M --class 3 --num_images 3 --seed 5 --num_iter 4 --cfg 2.0 --diff_sampler DiSA --diff_upper_steps 20 --threads 1"

expect() { # WANT CMD...: run, keep the output in $T/out.log, fail unless it exits WANT
    want=$1; shift
    set +e; "$@" > "$T/out.log" 2>&1; s=$?; set -e
    [ "$s" = "$want" ] || { cat "$T/out.log"; fail "'$*' exited $s, expected $want"; }
}

expect 2 $B/disa-sample $S --precision fp16 --out "$T/x"
grep -q -- "--precision must be fp32, bf16 or auto, got 'fp16'" "$T/out.log" || fail "bad --precision message: $(cat "$T/out.log")"
[ ! -e "$T/x/tokens.npy" ] || fail "tokens written after a bad flag"

expect 0 $B/disa-sample $S --out "$T/fp32"
# The refusal where bf16 cannot run, also on a CPU that has it (DISA_TEST_NO_BF16):
# disa-sample exits 2 before loading anything, disa-gen stops every rank before any work.
DISA_TEST_NO_BF16=1 expect 2 $B/disa-sample $S --precision bf16 --out "$T/nobf16"
grep -q -- "--precision bf16: this CPU has no AVX512_BF16" "$T/out.log" || fail "no reason given: $(cat "$T/out.log")"
[ ! -e "$T/nobf16" ] || fail "disa-sample wrote output before refusing bf16"
set +e
DISA_TEST_NO_BF16=1 gen 2 jobs/tiny-test.json --output_dir "$T/nobf16run" --precision bf16 --quiet > "$T/out.log" 2>&1
s=$?
set -e
[ "$s" != 0 ] || fail "disa-gen ran bf16 where it is not available"
grep -q "this CPU has no AVX512_BF16" "$T/out.log" || fail "disa-gen gave no reason: $(cat "$T/out.log")"
! ls "$T/nobf16run" 2>/dev/null | grep -q '\.png$' || fail "disa-gen wrote images before refusing bf16"

# auto without bf16 is fp32, bit for bit, and says why.
DISA_TEST_NO_BF16=1 expect 0 $B/disa-sample $S --precision auto --out "$T/auto_nobf16"
grep -q "precision fp32 (bf16 cannot run: this CPU has no AVX512_BF16" "$T/out.log" || fail "auto: no reason: $(cat "$T/out.log")"
cmp -s "$T/fp32/tokens.npy" "$T/auto_nobf16/tokens.npy" || fail "auto without bf16 differs from fp32"
DISA_TEST_NO_BF16=1 expect 0 $B/disa-info
grep -q "precision auto: fp32 (bf16 cannot run" "$T/out.log" || fail "disa-info: $(cat "$T/out.log")"

if ! grep -qw avx512_bf16 /proc/cpuinfo; then
    expect 2 $B/disa-sample $S --precision bf16 --out "$T/bf16"
    grep -q "AVX512_BF16\|oneDNN" "$T/out.log" || fail "no reason given: $(cat "$T/out.log")"
    expect 0 $B/disa-info
    grep -q "precision auto: fp32" "$T/out.log" || fail "disa-info: $(cat "$T/out.log")"
    echo "precision: bf16 refused on this CPU, with a reason; auto is fp32"
    exit 0
fi
expect 0 $B/disa-info
grep -q "precision auto: bf16 (oneDNN [0-9.]*, ISA avx512_core" "$T/out.log" || fail "disa-info: $(cat "$T/out.log")"
grep "precision auto" "$T/out.log"

# bf16 with oneDNN's trace: the primitives run on an optimised kernel (no "ref:"), and
# every reorder (the weight packing when the model is prepared) comes before the first
# matmul: a sampling step reorders nothing.
ONEDNN_VERBOSE=1 expect 0 $B/disa-sample $S --precision bf16 --out "$T/bf16"
grep "^onednn_verbose,exec" "$T/out.log" > "$T/exec.log" || fail "no oneDNN trace: $(head "$T/out.log")"
n_mm=$(grep -c ",matmul," "$T/exec.log" || true)
[ "$n_mm" -gt 100 ] || fail "only $n_mm matmuls traced"
first_mm=$(grep -n ",matmul," "$T/exec.log" | head -n 1 | cut -d: -f1)
last_re=$(grep -n ",reorder," "$T/exec.log" | tail -n 1 | cut -d: -f1)
[ -n "$last_re" ] || fail "no weight packing traced"
[ "$last_re" -lt "$first_mm" ] || fail "a reorder ran during sampling: $(sed -n "${last_re}p" "$T/exec.log")"
! grep -q ",ref:" "$T/exec.log" || fail "a primitive fell back to oneDNN's reference kernel: $(grep ',ref:' "$T/exec.log" | head -n 2)"
echo "precision: $n_mm matmuls ($(cut -d, -f5 "$T/exec.log" | grep -v '^jit:uni$' | sort | uniq -c | tr -s ' \n' ' ')), no reorder after the first"
# auto where bf16 runs: the same tokens as bf16.
expect 0 $B/disa-sample $S --precision auto --out "$T/auto"
grep -q "precision bf16 (oneDNN" "$T/out.log" || fail "auto did not pick bf16: $(cat "$T/out.log")"
cmp -s "$T/bf16/tokens.npy" "$T/auto/tokens.npy" || fail "auto differs from bf16"
# The DPM solvers and the adaptive strategy run in fp32 only: bf16, and auto where it
# becomes bf16, refuse them before any work, saying where bf16 came from; without bf16,
# auto runs them in fp32.
DPM="--diff_sampler DPM_Solver++ --dpm_order 2 --diff_lower_steps 2"
expect 2 $B/disa-sample $S $DPM --precision auto --out "$T/autodpm"
grep -q -- "--precision auto resolves to bf16 here, and bf16 runs the default, DiSA and DDIM samplers; DPM_Solver, DPM_Solver++ and the adaptive strategy run in fp32 for now (got --diff_sampler DPM_Solver++): give --precision fp32" "$T/out.log" ||
    fail "auto DPM: $(cat "$T/out.log")"
[ ! -e "$T/autodpm" ] || fail "disa-sample wrote output before refusing DPM in bf16"
DISA_TEST_NO_BF16=1 expect 0 $B/disa-sample $S $DPM --precision auto --out "$T/autodpm32"
expect 0 $B/disa-sample $S $DPM --out "$T/dpm32"
cmp -s "$T/dpm32/tokens.npy" "$T/autodpm32/tokens.npy" || fail "auto DPM without bf16 differs from fp32"
# Same seed, same Philox draws: the tokens differ only by bf16 rounding in the matmuls
# (and what the AR loop makes of it). Normwise error between 1e-6 and 0.2.
$PY - "$T/fp32/tokens.npy" "$T/bf16/tokens.npy" <<'PYEOF'
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == b.shape, (a.shape, b.shape)
e = float(np.abs(a - b).max() / np.abs(a).max())
print(f"precision: tokens bf16 vs fp32, normwise max error {e:.3g}")
assert 1e-6 < e < 0.2, e
PYEOF

# A job's sampling.precision: accepted, recorded in run.json; auto is recorded as what
# it became; a bad value names the field.
sed 's|"diff_annealing_strategy": "linear"|"diff_annealing_strategy": "linear", "precision": "bf16"|' \
    jobs/tiny-test.json > "$T/job.json"
grep -q '"precision": "bf16"' "$T/job.json" || fail "job edit"
expect 0 gen 1 "$T/job.json" --output_dir "$T/run" --num_images 10 --quiet
grep -q "precision=bf16" "$T/run/run.json" || fail "run.json lacks precision=bf16"
grep -q '"precision":[[:space:]]*"bf16"' "$T/run/run.json" || fail "run.json lacks \"precision\": \"bf16\": $(cat "$T/run/run.json")"
check_complete "$T/run" 10
sed 's|"bf16"|"auto"|' "$T/job.json" > "$T/auto.json"
expect 0 gen 2 "$T/auto.json" --output_dir "$T/autorun" --num_images 10 --quiet
grep -q '"precision":[[:space:]]*"bf16"' "$T/autorun/run.json" || fail "auto job: $(cat "$T/autorun/run.json")"
grep -q '"bf16":[[:space:]]*"oneDNN [0-9.]*, ISA avx512_core' "$T/autorun/run.json" || fail "auto job: no ISA in run.json"
expect 2 gen 2 "$T/auto.json" --output_dir "$T/autoadapt" --num_images 10 --diff_annealing_strategy adaptive \
    --diff_budget 12 --quiet
grep -q -- "tiny-test: --precision auto resolves to bf16 here, and bf16 runs .*(got --diff_annealing_strategy adaptive with --diff_sampler DiSA)" "$T/out.log" ||
    fail "auto adaptive job: $(cat "$T/out.log")"
! ls "$T/autoadapt" 2>/dev/null | grep -q '\.png$' || fail "disa-gen wrote images before refusing adaptive in bf16"
DISA_TEST_NO_BF16=1 expect 0 gen 2 "$T/auto.json" --output_dir "$T/autorun32" --num_images 10 --quiet
grep -q '"precision":[[:space:]]*"fp32"' "$T/autorun32/run.json" || fail "auto job without bf16: $(cat "$T/autorun32/run.json")"
! grep -q "precision=" "$T/autorun32/run.json" || fail "fp32 run identity changed: $(cat "$T/autorun32/run.json")"
check_complete "$T/autorun32" 10
sed 's|"bf16"|"half"|' "$T/job.json" > "$T/bad.json"
expect 2 gen 1 "$T/bad.json" --output_dir "$T/bad" --quiet
grep -q "sampling.precision" "$T/out.log" && grep -q "fp32, bf16 or auto" "$T/out.log" || fail "bad job message: $(cat "$T/out.log")"
echo "precision: ok"
