#!/bin/sh
# The watchdog: a rank that stops answering while it holds a unit (here SIGSTOP, as a
# hung node would) makes rank 0 abort the job within the limit, naming the rank, instead
# of waiting forever; the re-run resumes and completes with every image once.
set -eu
. tests/e2e/lib.inc
ARGS="--num_images 300 --eval_bsz 2 --num_iter 32 --diff_upper_steps 50 --progress 0 --unit_timeout 3"
start=$(date +%s)
gen 2 jobs/tiny-test.json --output_dir "$T/w" $ARGS > "$T/w.log" 2>&1 &
mp=$!
wait_lines "$T/w/manifest" 20
pid=$(rank_pid $mp 1)  # only this test's run, never another on the machine
[ -n "$pid" ] || fail "rank 1 not found"
kill -STOP "$pid"
stopped=$(date +%s)
# Bounded: the limit is 3 s; allow generous slack for a loaded machine, never a hang.
i=0
while kill -0 $mp 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 600 ] && { kill -CONT "$pid" 2>/dev/null; fail "the job did not end within 60 s of the stop"; }
    sleep 0.1
done
wait $mp && fail "the aborted job should not exit 0" || true
took=$(( $(date +%s) - stopped ))
grep -q "rank 1 has sent nothing for" "$T/w.log" || { cat "$T/w.log"; fail "no watchdog message"; }
echo "watchdog ended the job $took s after rank 1 stopped"
# The re-run checks the resume, not the watchdog: under a loaded machine a unit can take
# longer than 3 s, so it runs with the automatic limit.
gen 2 jobs/tiny-test.json --output_dir "$T/w" $ARGS --unit_timeout auto > "$T/w2.log" 2>&1 || { cat "$T/w2.log"; fail "re-run failed"; }
check_complete "$T/w" 300
[ "$(sort -u "$T/w/manifest" | wc -l)" = 150 ] && [ "$(wc -l < "$T/w/manifest")" = 150 ] || fail "ledger lists a unit twice"
echo "ok ($(( $(date +%s) - start )) s)"
