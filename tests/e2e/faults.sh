# Faults during a run (kill -9 of one rank in sampling is gen_resume.sh's): after each,
# the same command is run again and must end with every image present exactly once,
# PNG bytes and metrics identical to an uninterrupted run, no temporary file left and a
# ledger without duplicates.
#  1. kill -9 at random moments: a tiny job of one-image units (most of a unit's time
#     is the PNG write, the feature file and the fsync'd ledger line) is killed 5 times,
#     a random rank (0 = the ledger writer) after a random delay, re-run after each.
#  2. disk full: the output folder is a 200 kB tmpfs; the run must stop cleanly with a
#     message naming the file and "No space left"; after growing the tmpfs to 20 MB the
#     re-run completes.
#  3. unwritable output folder: a read-only tmpfs (root ignores chmod); a fresh run and
#     the resume of a half-done run both fail cleanly; made writable again, it completes.
# Parts 2 and 3 need mount (root or CAP_SYS_ADMIN): each prints a SKIP line when it
# cannot mount; with neither possible and part 1 done the script still passes.
. tests/e2e/lib.inc
MNT=""
trap 'for m in $MNT; do umount "$m" 2>/dev/null; done; rm -rf "$T"' EXIT

cat > "$T/job.json" <<EOF
{"name": "faults", "model": "models/tiny-test.safetensors", "num_images": 400, "eval_bsz": 1, "seed": 11,
 "features": "models/fmnist-classifier.safetensors", "reference": "models/fmnist-test-stats.npz",
 "sampling": {"num_iter": 16, "cfg": 2.0, "diff_sampler": "DiSA", "diff_upper_steps": 20, "diff_lower_steps": 3}}
EOF
N=400
ARGS="--progress 0"
rand() { # 0..$1-1
    echo $(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % $1 ))
}
# The mpirun started under PID (or PID itself).
mpirun_pid() {
    [ "$(cat /proc/$1/comm 2>/dev/null)" = mpirun ] && { echo "$1"; return; }
    descendants "$1" mpirun | head -n 1
}
# The metrics of a summary, without timings.
metrics() { grep '"metrics"' "$1/summary.json" | sed 's/"seconds": [0-9.e+-]*//'; }
# Every image once, no temporary files anywhere, one ledger line per unit, same bytes
# and metrics as the reference.
check_run() { # DIR
    check_complete "$1" $N
    left=$(find "$1" -name '*.tmp*' | head -n 5)
    [ -z "$left" ] || fail "$1: temporary files left: $left"
    [ "$(wc -l < "$1/manifest")" = "$(sort -u "$1/manifest" | wc -l)" ] || fail "$1: the ledger lists a unit twice"
    [ "$(wc -l < "$1/manifest")" = $N ] || fail "$1: ledger has $(wc -l < "$1/manifest") lines, expected $N"
    same_pngs "$T/ref" "$1"
    [ "$(metrics "$1")" = "$(metrics "$T/ref")" ] || fail "$1: metrics differ: $(metrics "$1") vs $(metrics "$T/ref")"
    [ -n "$(metrics "$1")" ] || fail "$1: no metrics in summary.json"
}
gen 2 "$T/job.json" --output_dir "$T/ref" $ARGS > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "reference run failed"; }
check_complete "$T/ref" $N
grep -q '"FID"' "$T/ref/summary.json" || fail "reference run has no FID"
echo "reference: $N images, $(metrics "$T/ref" | cut -c1-120)"

# ---- 1. kill -9 at random moments
D=$T/kill
kills=0
for k in 1 2 3 4 5; do
    before=$(cat "$D/manifest" 2>/dev/null | wc -l)
    [ "$before" -ge $N ] && break
    gen 2 "$T/job.json" --output_dir "$D" $ARGS > "$T/kill$k.log" 2>&1 &
    mp=$!
    # Kill after a random number of further units, then a random few ms into the next
    # one: progress-based, so the kills land inside the run on a fast or a slow machine,
    # at random points of a unit (sampling, PNG write, ledger write). The rank's PID is
    # looked up once the run has written its first unit, before the random wait: the
    # lookup walks /proc and takes longer than many of these small units.
    wait_lines "$D/manifest" $((before + 1))
    r=$(rand 2)
    pid=$(rank_pid "$mp" "$r")
    target=$((before + 1 + $(rand 10)))
    [ $target -lt $N ] || target=$((N - 1))
    [ $target -le $((before + 1)) ] || wait_lines "$D/manifest" $target
    delay=$(rand 20)
    sleep "$(printf '0.%03d' "$delay")"
    if [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait $mp
    st=$?
    echo "kill $k: rank $r (pid ${pid:-gone}) ${delay} ms after a ledger line, run started at unit $before: mpirun status $st," \
         "$(wc -l < "$D/manifest") of $N units in the ledger, $(find "$D" -name '*.tmp*' | wc -l) temporary files"
done
[ "$kills" -ge 3 ] || fail "only $kills of 5 kills landed; make the job longer"
gen 2 "$T/job.json" --output_dir "$D" $ARGS > "$T/kill_final.log" 2>&1 || { cat "$T/kill_final.log"; fail "final run after the kills failed"; }
check_run "$D"
echo "kill -9: $kills kills, then complete: identical PNGs and metrics, no temporary files, no duplicate units"

# ---- 2. disk full
F=$T/full
mkdir -p "$F"
if mount -t tmpfs -o size=200k tmpfs "$F" 2>/dev/null; then
    MNT="$MNT $F"
    gen 2 "$T/job.json" --output_dir "$F/run" $ARGS > "$T/full.log" 2>&1
    st=$?
    [ $st != 0 ] && [ $st -lt 128 ] || { tail -n 20 "$T/full.log"; fail "disk full: exit status $st, expected a clean failure"; }
    grep -q "No space left on device" "$T/full.log" || { tail -n 20 "$T/full.log"; fail "disk full: no 'No space left' message"; }
    grep "No space left" "$T/full.log" | grep -q "$F/run/" || { tail -n 20 "$T/full.log"; fail "disk full: the message does not name the file"; }
    echo "disk full: status $st: $(grep 'No space left' "$T/full.log" | head -n 1 | cut -c1-200)"
    echo "disk full: $(wc -l < "$F/run/manifest") of $N units in the ledger"
    mount -o remount,size=20m "$F" || fail "remount with 20m"
    gen 2 "$T/job.json" --output_dir "$F/run" $ARGS > "$T/full2.log" 2>&1 || { tail -n 20 "$T/full2.log"; fail "re-run after disk full failed"; }
    check_run "$F/run"
    echo "disk full: re-run after growing the disk: complete and identical"
else
    echo "SKIP disk full: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)"
fi

# ---- 3. unwritable output folder
R=$T/ro
mkdir -p "$R"
if mount -t tmpfs -o size=20m tmpfs "$R" 2>/dev/null; then
    MNT="$MNT $R"
    mount -o remount,ro "$R" || fail "remount read-only"
    gen 2 "$T/job.json" --output_dir "$R/run" $ARGS > "$T/ro.log" 2>&1
    st=$?
    [ $st != 0 ] && [ $st -lt 128 ] || { tail -n 20 "$T/ro.log"; fail "read-only folder: exit status $st, expected a clean failure"; }
    grep -q "$R/run.*Read-only file system" "$T/ro.log" || { tail -n 20 "$T/ro.log"; fail "read-only folder: message does not name the folder and the cause"; }
    echo "read-only folder (fresh run): status $st: $(grep 'Read-only' "$T/ro.log" | head -n 1 | cut -c1-200)"
    # A half-done run whose folder becomes read-only (a full quota, a remounted share).
    mount -o remount,rw "$R" || fail "remount rw"
    gen 2 "$T/job.json" --output_dir "$R/run" $ARGS > "$T/ro1.log" 2>&1 &
    mp=$!
    wait_lines "$R/run/manifest" 10
    mpid=$(mpirun_pid "$mp")
    [ -n "$mpid" ] || fail "mpirun not found"
    kill -USR1 "$mpid"
    wait $mp || { tail -n 20 "$T/ro1.log"; fail "SIGUSR1 to mpirun should end with exit 0"; }
    done_units=$(wc -l < "$R/run/manifest")
    mount -o remount,ro "$R" || fail "remount read-only"
    gen 2 "$T/job.json" --output_dir "$R/run" $ARGS > "$T/ro2.log" 2>&1
    st=$?
    [ $st != 0 ] && [ $st -lt 128 ] || { tail -n 20 "$T/ro2.log"; fail "read-only resume: exit status $st, expected a clean failure"; }
    grep -q "$R/run.*Read-only file system" "$T/ro2.log" || { tail -n 20 "$T/ro2.log"; fail "read-only resume: no message naming the file"; }
    echo "read-only folder (resume, $done_units units done): status $st: $(grep 'Read-only' "$T/ro2.log" | head -n 1 | cut -c1-200)"
    mount -o remount,rw "$R" || fail "remount rw"
    gen 2 "$T/job.json" --output_dir "$R/run" $ARGS > "$T/ro3.log" 2>&1 || { tail -n 20 "$T/ro3.log"; fail "re-run after the folder became writable failed"; }
    check_run "$R/run"
    echo "read-only folder: writable again, the re-run completes identical"
else
    echo "SKIP read-only folder: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)"
fi
echo ok
