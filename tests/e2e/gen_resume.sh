#!/bin/sh
# Killing a worker (kill -9), SIGTERM to the ranks, SIGUSR1 to mpirun and a truncated PNG:
# each re-run completes with every image present once and identical to an
# uninterrupted run.
set -eu
. tests/e2e/lib.inc
ARGS="--num_images 300 --eval_bsz 2 --num_iter 32 --diff_upper_steps 50 --progress 0 --threads 1"
gen 2 jobs/tiny-test.json --output_dir "$T/ref" $ARGS --quiet > /dev/null 2>&1 || fail "reference run failed"
check_complete "$T/ref" 300

# kill -9 of rank 1 mid-run: the job dies, the re-run finishes it.
gen 2 jobs/tiny-test.json --output_dir "$T/kill" $ARGS > "$T/kill.log" 2>&1 &
mp=$!
wait_lines "$T/kill/manifest" 20
pid=$(rank_pid $mp 1)  # only this test's run, never another on the machine
[ -n "$pid" ] || fail "rank 1 not found"
kill -9 "$pid"
wait $mp && fail "the killed run should not exit 0" || true
done_before=$(wc -l < "$T/kill/manifest")
[ "$done_before" -lt 150 ] || fail "the run finished before the kill; make it longer"
gen 2 jobs/tiny-test.json --output_dir "$T/kill" $ARGS > "$T/kill2.log" 2>&1 || { cat "$T/kill2.log"; fail "re-run after kill -9 failed"; }
grep -q "resuming: $done_before of 150 units done" "$T/kill2.log" || { cat "$T/kill2.log"; fail "re-run did not resume from the ledger"; }
check_complete "$T/kill" 300
[ "$(sort -u "$T/kill/manifest" | wc -l)" = 150 ] && [ "$(wc -l < "$T/kill/manifest")" = 150 ] || fail "ledger lists a unit twice"
same_pngs "$T/ref" "$T/kill"

# SIGTERM to the ranks: graceful stop, exit 0, resumable.
gen 2 jobs/tiny-test.json --output_dir "$T/term" $ARGS > "$T/term.log" 2>&1 &
mp=$!
wait_lines "$T/term/manifest" 20
kill -TERM $(descendants $mp disa-gen)
wait $mp || { cat "$T/term.log"; fail "SIGTERM should end with exit 0"; }
grep -q "resumable" "$T/term.log" || fail "no 'resumable' message after SIGTERM"
[ "$(wc -l < "$T/term/manifest")" -lt 150 ] || fail "the run finished before SIGTERM"
! ls "$T/term" | grep -q '\.tmp$' || fail "temporary files left after SIGTERM"
gen 2 jobs/tiny-test.json --output_dir "$T/term" $ARGS > /dev/null 2>&1 || fail "re-run after SIGTERM failed"
check_complete "$T/term" 300
same_pngs "$T/ref" "$T/term"

# SIGUSR1 to mpirun (what SLURM's --signal=B:USR1 leads to): forwarded, exit 0.
gen 2 jobs/tiny-test.json --output_dir "$T/usr1" $ARGS > "$T/usr1.log" 2>&1 &
mp=$!
wait_lines "$T/usr1/manifest" 20
kill -USR1 $(descendants $mp mpirun)
wait $mp || { cat "$T/usr1.log"; fail "SIGUSR1 should end with exit 0"; }
grep -q "resumable" "$T/usr1.log" || fail "no 'resumable' message after SIGUSR1"
gen 2 jobs/tiny-test.json --output_dir "$T/usr1" $ARGS > /dev/null 2>&1 || fail "re-run after SIGUSR1 failed"
same_pngs "$T/ref" "$T/usr1"

# A PNG truncated on disk is found on resume and its unit recomputed.
head -c 100 "$T/ref/00123.png" > "$T/trunc" && mv "$T/trunc" "$T/kill/00123.png"
gen 1 jobs/tiny-test.json --output_dir "$T/kill" $ARGS > "$T/trunc.log" 2>&1 || fail "re-run with a truncated PNG failed"
grep -q "unit 61 is in the ledger but" "$T/trunc.log" || { cat "$T/trunc.log"; fail "truncated PNG not detected"; }
grep -q "1 units (2 images) to do" "$T/trunc.log" || fail "exactly one unit should be recomputed"
same_pngs "$T/ref" "$T/kill"
echo ok
