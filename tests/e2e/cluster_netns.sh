#!/bin/sh
# disa-gen across "hosts" joined by a real network: three network namespaces on one
# machine (tests/cluster/netns_up.sh), mpirun in disa-h0, one rank in each of disa-h1 and
# disa-h2 (hosts/test-netns) started through tests/cluster/netns-rsh instead of ssh, Open
# MPI's TCP transport (btl tcp, oob tcp) over the veth links and the bridge.
# - The tiny job across the hosts: TCP connections on 10.213.0.0/24, PNGs identical to a
#   one-host run.
# - disa-h2's link cut mid-run (ip link set eth0 down): the job must fail, not hang. What
#   bounds it: Open MPI's OOB keepalive (oob_tcp_keepalive_time 2, _intvl 1, _probes 3:
#   a silent daemon is declared lost after ~5 s; "ORTE has lost communication with a
#   remote daemon", the job is torn down on every host). The test allows CUT_LIMIT=20 s
#   and wraps every mpirun in `timeout` (60 s) so a hang fails instead of blocking. With
#   Open MPI's defaults (300 + 9 x 20 s) the same cut leaves the job hanging for ~8 min:
#   rank 0 waits in MPI for the unit of the unreachable rank.
# - After the link is restored the re-run completes: every image once, identical.
# SKIP (exit 77) only without root/CAP_NET_ADMIN or when iproute2/ping/unshare cannot be installed.
set -eu
t0=$(date +%s)
. tests/e2e/lib.inc
# The cluster is taken down only by the run that set it up.
own=0
cleanup() {
    [ $own = 0 ] || sh tests/cluster/netns_down.sh > /dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
skip() { echo "SKIP: $*"; exit 77; }
say() { echo "[$(($(date +%s) - t0)) s] $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (CAP_NET_ADMIN) to create network namespaces"
if ! command -v ip > /dev/null 2>&1 || ! command -v ping > /dev/null 2>&1 || ! command -v unshare > /dev/null 2>&1; then
    sh tools/deps-cluster.sh || skip "iproute2/iputils-ping/util-linux are missing and could not be installed (make deps-cluster)"
fi
# Namespaces left by a run killed before its cleanup are removed; with processes inside
# they belong to a run in progress.
if ip netns list | grep -qw 'disa-h[0-2]'; then
    [ -z "$(for h in disa-h0 disa-h1 disa-h2; do ip netns pids $h 2> /dev/null; done)" ] \
        || fail "the namespaces disa-h0..2 exist with processes in them: another run in progress? (tests/cluster/netns_down.sh)"
    echo "removing namespaces left by an interrupted run"
    sh tests/cluster/netns_down.sh
fi
# Can this process make namespaces, veth pairs and bridges (CAP_SYS_ADMIN + CAP_NET_ADMIN)?
probe=disa-probe-$$
ip netns add "$probe" 2> "$T/probe.err" || skip "cannot create network namespaces: $(cat "$T/probe.err")"
pst=0
{ ip -n "$probe" link add p0 type veth peer name p1 && ip -n "$probe" link add pbr type bridge \
    && ip -n "$probe" link set lo up; } 2> "$T/probe.err" || pst=1
ip netns del "$probe"
[ $pst = 0 ] || skip "cannot create veth links or bridges (no CAP_NET_ADMIN?): $(head -n 1 "$T/probe.err")"
own=1
sh tests/cluster/netns_up.sh || fail "tests/cluster/netns_up.sh failed"

if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
NET=10.213.0.0/24
MCA="--mca plm_rsh_agent $PWD/tests/cluster/netns-rsh --mca plm_rsh_no_tree_spawn 1
     --mca btl tcp,self --mca btl_tcp_if_include $NET --mca oob_tcp_if_include $NET
     --mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 3"
# netgen [mpirun flags] -- disa-gen args: 2 ranks on disa-h1 + disa-h2, mpirun in disa-h0, at most 60 s.
netgen() {
    extra=""
    while [ "$1" != -- ]; do extra="$extra $1"; shift; done
    shift
    # shellcheck disable=SC2086
    timeout -k 5 60 ip netns exec disa-h0 mpirun -np 2 --hostfile hosts/test-netns --bind-to none $MCA $extra \
        "$B/disa-gen" "$@"
}
# Every namespace is empty of processes (at most 10 s).
no_procs() {
    i=0
    while [ -n "$(ip netns pids disa-h0; ip netns pids disa-h1; ip netns pids disa-h2)" ]; do
        i=$((i + 1))
        [ $i -gt 50 ] && { for h in disa-h0 disa-h1 disa-h2; do ip netns pids $h | xargs -r ps -o pid=,args= -p; done; fail "$1: processes left in the namespaces"; }
        sleep 0.2
    done
}

# 1. The tiny job across the namespace hosts, against one host.
gen 2 jobs/tiny-test.json --output_dir "$T/ref" --threads 1 --quiet > "$T/ref.log" 2>&1 || { cat "$T/ref.log"; fail "one-host reference run failed"; }
netgen --mca btl_base_verbose 100 -- jobs/tiny-test.json --output_dir "$T/net" --threads 1 > "$T/net.log" 2>&1 \
    || { grep -v '^\[disa-h.*btl' "$T/net.log" | tail -n 30; fail "the run across the namespace hosts failed"; }
grep -q 'INFO 2 ranks, 1 on this node' "$T/net.log" || { cat "$T/net.log"; fail "the ranks did not land on separate hosts"; }
conn=$(grep -o 'connect() to 10\.213\.0\.1[12]:[0-9]* completed' "$T/net.log" | head -n 1)
[ -n "$conn" ] || { tail -n 40 "$T/net.log"; fail "no btl tcp connection between the ranks on $NET"; }
check_complete "$T/net" 20
same_pngs "$T/ref" "$T/net"
no_procs "clean run"
say "ok: 20 images on disa-h1 + disa-h2 over btl tcp ($conn), identical to one host"

# 2. Cut disa-h2's link mid-run: a clean failure within CUT_LIMIT seconds, nothing left running.
CUT_LIMIT=20
ARGS="--num_images 300 --eval_bsz 2 --num_iter 32 --diff_upper_steps 50 --progress 60 --threads 1"
gen 2 jobs/tiny-test.json --output_dir "$T/long-ref" $ARGS --quiet > "$T/long-ref.log" 2>&1 || { cat "$T/long-ref.log"; fail "one-host reference run (300 images) failed"; }
netgen -- jobs/tiny-test.json --output_dir "$T/cut" $ARGS > "$T/cut.log" 2>&1 &
mp=$!
wait_lines "$T/cut/manifest" 20
ip -n disa-h2 link set eth0 down
cut_at=$(date +%s)
st=0
wait $mp || st=$?
took=$(($(date +%s) - cut_at))
case $st in
    0) fail "the run with a cut link exited 0 (it should fail)" ;;
    124 | 137) tail -n 20 "$T/cut.log"; fail "the run hung after the cut until timeout killed it (status $st)" ;;
esac
[ $took -le $CUT_LIMIT ] || fail "the run took $took s to fail after the cut (limit $CUT_LIMIT s)"
grep -q 'ORTE has lost communication with a remote daemon' "$T/cut.log" || { tail -n 20 "$T/cut.log"; fail "no lost-daemon message after the cut"; }
done_before=$(wc -l < "$T/cut/manifest")
[ "$done_before" -lt 150 ] || fail "the run finished before the cut; make it longer"
no_procs "after the cut"
say "ok: link of disa-h2 cut at $done_before/150 units: mpirun exited $st after $took s (limit $CUT_LIMIT s), nothing left running"

# 3. Link restored: the re-run resumes from the ledger and completes, every image once.
ip -n disa-h2 link set eth0 up
i=0
until ip netns exec disa-h1 ping -c 1 -W 1 10.213.0.12 > /dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 25 ] && fail "disa-h2 unreachable after the link came back"; sleep 0.2
done
netgen -- jobs/tiny-test.json --output_dir "$T/cut" $ARGS > "$T/rerun.log" 2>&1 || { tail -n 30 "$T/rerun.log"; fail "re-run after restoring the link failed"; }
grep -q "resuming: $done_before of 150 units done" "$T/rerun.log" || { cat "$T/rerun.log"; fail "the re-run did not resume from the ledger"; }
check_complete "$T/cut" 300
[ "$(sort -u "$T/cut/manifest" | wc -l)" = 150 ] && [ "$(wc -l < "$T/cut/manifest")" = 150 ] || fail "the ledger lists a unit twice or misses one"
same_pngs "$T/long-ref" "$T/cut"
no_procs "re-run"
say "ok: link restored, re-run resumed at $done_before/150 units: 300 images once each, identical to one host"
echo ok
