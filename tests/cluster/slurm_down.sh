#!/bin/sh
# Stops the test cluster of tests/cluster/slurm_up.sh (its jobs, slurmd, slurmctld, munged)
# and removes its folder. Safe to run when nothing is up.
D=${DISA_SLURM_DIR:-${TMPDIR:-/tmp}/disa-slurm}
[ -d "$D" ] || exit 0
if [ -f "$D/slurm.conf" ] && [ -f "$D/slurmctld.pid" ]; then
    # Jobs first (their steps end with them), then the daemons.
    export SLURM_CONF="$D/slurm.conf"
    if [ -n "$(timeout 10 squeue -h -o %i 2> /dev/null)" ]; then
        timeout 10 scancel --user=root > /dev/null 2>&1
        i=0
        while [ -n "$(timeout 10 squeue -h -o %i 2> /dev/null)" ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
    fi
fi
# Each daemon by the pid its pid file names, only if that process still is that daemon.
stop() { # pidfile name
    [ -f "$1" ] || return 0
    p=$(cat "$1" 2> /dev/null)
    [ -n "$p" ] || return 0
    case $(cat "/proc/$p/comm" 2> /dev/null) in "$2"*) ;; *) return 0 ;; esac
    kill "$p" 2> /dev/null
    i=0
    while kill -0 "$p" 2> /dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -0 "$p" 2> /dev/null && kill -9 "$p" 2> /dev/null
    return 0
}
stop "$D/slurmd.pid" slurmd
# slurmstepd processes of this cluster left behind (they inherit slurmd's SLURM_CONF).
for p in $(pgrep -x slurmstepd 2> /dev/null); do
    tr '\0' '\n' < "/proc/$p/environ" 2> /dev/null | grep -qx "SLURM_CONF=$D/slurm.conf" && kill -9 "$p" 2> /dev/null
done
stop "$D/slurmctld.pid" slurmctld
stop "$D/munge/munged.pid" munged
rm -rf "$D"
echo "slurm_down: stopped, $D removed"
