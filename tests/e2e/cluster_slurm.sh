#!/bin/sh
# The SLURM path for real, on a one-machine cluster (tests/cluster/slurm_up.sh):
# - slurm/sample.sbatch, unchanged, under sbatch in both launch modes (srun --mpi=pmix and
#   LAUNCH=mpirun inside the allocation): PNGs byte-identical to an mpirun run;
# - scancel --signal=USR1 --batch mid-run (what --signal=B:USR1@120 and preemption do):
#   the ranks stop resumably, the script requeues the job, the requeued job finishes with
#   every image exactly once and identical to the mpirun run (both launch modes);
# - slurm/sweep.sbatch as a 2-task array over a 2-variant job file: each variant folder
#   identical to mpirun --variant NAME;
# - srun --mpi=none -n 2 disa-gen: refused with nothing written (Open MPI 4.1's MPI_Init
#   aborts first, exit 1); with singletons let through, disa-gen's guard exits 2.
# SKIP (exit 77) only without root or when the packages (make deps-cluster) cannot be installed.
set -eu
t0=$(date +%s)
. tests/e2e/lib.inc
# One fixed folder, so that a cluster left by a run killed before its cleanup is found
# (and removed) by the next run; "owner" holds the pid of the run using it.
export DISA_SLURM_DIR="${TMPDIR:-/tmp}/disa-e2e-slurm"
# The cluster is taken down only by the run that set it up.
own=0
cleanup() {
    [ $own = 0 ] || sh tests/cluster/slurm_down.sh > /dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root to start slurmctld/slurmd/munged (tests/cluster/slurm_up.sh)"
PATH=$PATH:/usr/sbin
have_all() { for c in slurmctld slurmd munged mungekey sbatch srun scontrol sinfo squeue scancel; do command -v $c > /dev/null 2>&1 || return 1; done; }
have_all || sh tools/deps-cluster.sh || skip "the SLURM/MUNGE packages are missing and could not be installed (make deps-cluster)"
have_all || fail "the SLURM/MUNGE commands are still missing after make deps-cluster"
if [ -d "$DISA_SLURM_DIR" ]; then
    owner=$(cat "$DISA_SLURM_DIR/owner" 2> /dev/null || true)
    [ -z "$owner" ] || ! kill -0 "$owner" 2> /dev/null || { fail "another cluster_slurm.sh (pid $owner) is using $DISA_SLURM_DIR"; }
    echo "removing a test cluster left by an interrupted run"
    sh tests/cluster/slurm_down.sh
fi
own=1
sh tests/cluster/slurm_up.sh || fail "the test cluster did not start (tests/cluster/slurm_up.sh above)"
echo $$ > "$DISA_SLURM_DIR/owner"
. "$DISA_SLURM_DIR/env"
echo "cluster: $(sinfo -h -o '%P %D %c %T')"

# Wait (at most $2 s) until no task of job $1 is pending, running or being requeued.
wait_job() {
    i=0
    while :; do
        st=$(scontrol -o show job "$1" 2> /dev/null | grep -o 'JobState=[A-Z_]*' | sort -u | tr '\n' ' ')
        case "$st" in *PENDING* | *RUNNING* | *CONFIGURING* | *COMPLETING* | *REQUEUE* | *SUSPENDED* | "") ;; *) break ;; esac
        i=$((i + 1))
        [ $i -gt $(($2 * 5)) ] && { scontrol show job "$1"; fail "job $1 not done after $2 s ($st)"; }
        sleep 0.2
    done
}
# Job $1 (every array task) COMPLETED with exit code 0; else show log $2 and fail.
job_ok() {
    bad=$(scontrol -o show job "$1" | grep -v 'JobState=COMPLETED .*ExitCode=0:0' || true)
    [ -z "$bad" ] || { cat "$2" 2> /dev/null; echo "$bad"; fail "job $1 did not complete with exit 0"; }
}
SB="--parsable --partition=disa"

# Launch modes: srun --mpi=pmix needs SLURM's pmix plugin (Open MPI 4.1 here is built with PMIx).
modes="mpirun"
if srun --mpi=list 2>&1 | grep -qw pmix; then
    modes="srun mpirun"
else
    echo "NOTE: srun --mpi=pmix unsupported here: 'srun --mpi=list' has no pmix plugin; only LAUNCH=mpirun is tested"
fi
echo "launch modes: $modes"

# 1. sample.sbatch on the tiny job, each launch mode, against mpirun.
gen 2 jobs/tiny-test.json --output_dir "$T/ref" --quiet > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "mpirun reference run failed"; }
check_complete "$T/ref" 20
for m in $modes; do
    id=$(LAUNCH=$m sbatch $SB --output="$T/tiny-$m.out" slurm/sample.sbatch jobs/tiny-test.json --output_dir "$T/tiny-$m")
    wait_job "$id" 60
    job_ok "$id" "$T/tiny-$m.out"
    grep -q "launch $m" "$T/tiny-$m.out" || fail "job $id did not use launch $m"
    grep -q "INFO 2 ranks" "$T/tiny-$m.out" || { cat "$T/tiny-$m.out"; fail "launch $m did not give one MPI world of 2 ranks"; }
    check_complete "$T/tiny-$m" 20
    same_pngs "$T/ref" "$T/tiny-$m"
    echo "[$(($(date +%s) - t0)) s] ok: sample.sbatch LAUNCH=$m: 20 PNGs identical to mpirun"
done

# 2. USR1 to the batch shell mid-run: resumable stop, requeue, completion with every image once.
ARGS="--num_images 300 --eval_bsz 2 --num_iter 32 --diff_upper_steps 50 --progress 60"
gen 2 jobs/tiny-test.json --output_dir "$T/long-ref" $ARGS --quiet > "$T/long-ref.log" 2>&1 || { cat "$T/long-ref.log"; fail "mpirun reference run (300 images) failed"; }
check_complete "$T/long-ref" 300
for m in $modes; do
    out="$T/rq-$m.out"
    id=$(LAUNCH=$m sbatch $SB --output="$out" slurm/sample.sbatch jobs/tiny-test.json --output_dir "$T/rq-$m" $ARGS)
    wait_lines "$T/rq-$m/manifest" 20
    scancel --signal=USR1 --batch "$id"
    wait_job "$id" 90
    job_ok "$id" "$out"
    grep -q "the run is resumable" "$out" || { cat "$out"; fail "launch $m: no 'resumable' message after USR1"; }
    grep -q "requeueing job $id" "$out" || { cat "$out"; fail "launch $m: the script did not requeue"; }
    grep -q "restart 1" "$out" || { cat "$out"; fail "launch $m: the job did not restart"; }
    scontrol -o show job "$id" | grep -q 'Restarts=1 ' || fail "launch $m: job $id should have restarted once"
    resumed=$(sed -n 's/.*resuming: \([0-9]*\) of 150 units done.*/\1/p' "$out")
    [ -n "$resumed" ] && [ "$resumed" -gt 0 ] && [ "$resumed" -lt 150 ] || { cat "$out"; fail "launch $m: the requeued job did not resume from the ledger"; }
    check_complete "$T/rq-$m" 300
    [ "$(sort -u "$T/rq-$m/manifest" | wc -l)" = 150 ] && [ "$(wc -l < "$T/rq-$m/manifest")" = 150 ] \
        || fail "launch $m: the ledger lists a unit twice or misses one"
    same_pngs "$T/long-ref" "$T/rq-$m"
    echo "[$(($(date +%s) - t0)) s] ok: LAUNCH=$m: USR1 at $resumed/150 units, requeued, 300 PNGs once each, identical to mpirun"
done

# 3. sweep.sbatch: a 2-task array over a 2-variant job file.
cat > "$T/sweep.json" <<EOF
{
  "name": "sweep-test", "model": "models/tiny-test.safetensors", "vae": null,
  "output_dir": "$T/sweep", "num_images": 20, "eval_bsz": 3, "seed": 11,
  "sampling": {"num_iter": 6, "cfg": 2.0, "cfg_schedule": "linear", "temperature": 1.0,
               "diff_sampler": "DiSA", "diff_upper_steps": 20, "diff_lower_steps": 5,
               "diff_annealing_strategy": "linear"},
  "variants": [
    {"name": "linear-20-5", "sampling": {}},
    {"name": "cosine-10-2", "sampling": {"diff_upper_steps": 10, "diff_lower_steps": 2, "diff_annealing_strategy": "cosine"}}
  ]
}
EOF
id=$(sbatch $SB --array=0-1 --output="$T/sweep-%A_%a.out" slurm/sweep.sbatch "$T/sweep.json" linear-20-5 cosine-10-2)
wait_job "$id" 60
job_ok "$id" "$T/sweep-${id}_0.out"
for v in linear-20-5 cosine-10-2; do
    check_complete "$T/sweep/$v" 20
    gen 2 "$T/sweep.json" --variant "$v" --output_dir "$T/sweep-ref" --quiet > "$T/sweep-ref.log" 2>&1 || { cat "$T/sweep-ref.log"; fail "mpirun --variant $v failed"; }
    same_pngs "$T/sweep-ref/$v" "$T/sweep/$v"
done
cmp -s "$T/sweep/linear-20-5/00000.png" "$T/sweep/cosine-10-2/00000.png" && fail "the two variants wrote the same image"
echo "[$(($(date +%s) - t0)) s] ok: sweep.sbatch --array=0-1: each variant folder identical to mpirun --variant NAME"

# 4. The singletons guard: srun without an MPI plugin starts independent copies that each
# see a world of 1. Open MPI 4.1 (Debian 12) refuses that itself: MPI_Init aborts with
# "direct launched using srun ... not built with SLURM's PMI support" (exit 1) whenever
# SLURM_NODELIST is set, before disa-gen runs a line. disa-gen's own guard (exit 2) is the
# net for MPIs that do start singletons under srun; it is reached here by hiding
# SLURM_NODELIST from Open MPI. Either way nothing may be written.
st=0
srun --mpi=none -n 2 build/bin/disa-gen jobs/tiny-test.json --output_dir "$T/single" > "$T/single.log" 2>&1 || st=$?
[ ! -e "$T/single" ] || fail "srun --mpi=none -n 2 wrote into the output folder"
if [ "$st" = 2 ]; then
    grep -q "SLURM_STEP_NUM_TASKS=2 but the MPI world has 1 rank" "$T/single.log" || { cat "$T/single.log"; fail "exit 2 without the singletons message"; }
    echo "[$(($(date +%s) - t0)) s] ok: srun --mpi=none -n 2: disa-gen's guard, exit 2"
elif [ "$st" = 1 ] && grep -q 'direct launched using "srun"' "$T/single.log"; then
    echo "[$(($(date +%s) - t0)) s] ok: srun --mpi=none -n 2: Open MPI's MPI_Init refuses the direct launch (exit 1) before disa-gen's guard"
else
    cat "$T/single.log"; fail "srun --mpi=none -n 2 should be refused (exit 2 or Open MPI's exit 1), got $st"
fi
st=0
srun --mpi=none -n 2 env -u SLURM_NODELIST build/bin/disa-gen jobs/tiny-test.json --output_dir "$T/single" > "$T/single2.log" 2>&1 || st=$?
[ "$st" = 2 ] || { cat "$T/single2.log"; fail "srun --mpi=none -n 2 (singletons started) should exit 2, got $st"; }
[ "$(grep -c "SLURM_STEP_NUM_TASKS=2 but the MPI world has 1 rank" "$T/single2.log")" = 2 ] || { cat "$T/single2.log"; fail "each copy should print the singletons message"; }
[ ! -e "$T/single" ] || fail "the guarded run wrote into the output folder"
echo "[$(($(date +%s) - t0)) s] ok: srun --mpi=none -n 2 with singletons: exit 2: $(grep -m1 SLURM_STEP_NUM_TASKS "$T/single2.log")"
echo ok
