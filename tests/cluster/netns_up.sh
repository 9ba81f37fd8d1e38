#!/bin/sh
# Three "hosts" on one machine for multi-host MPI tests: network namespaces disa-h0,
# disa-h1, disa-h2 on a private test subnet, without ssh (tests/cluster/netns-rsh).
#
#   disa-h0  10.213.0.10  br0, the switch: the veth links of h1 and h2 are its ports;
#                         mpirun runs here (ip netns exec disa-h0 ...)
#   disa-h1  10.213.0.11  eth0 (veth, peer v-h1 in disa-h0)      ranks (hosts/test-netns)
#   disa-h2  10.213.0.12  eth0 (veth, peer v-h2 in disa-h0)      ranks (hosts/test-netns)
#
# Every interface, address and route is created inside these namespaces: the root
# namespace's interfaces, routes and /etc/hosts are not touched. The names resolve
# through /etc/netns/disa-hN/hosts, which `ip netns exec` binds over /etc/hosts for the
# processes it starts (mpirun, and the orted daemons netns-rsh starts).
#   tests/cluster/netns_up.sh     (root, CAP_NET_ADMIN)
#   tests/cluster/netns_down.sh   removes it all, ending any process left in the namespaces
# Cut one host's link:     ip -n disa-h2 link set eth0 down    (restore: ... up)
set -u
NET=10.213.0
HOSTS="disa-h0 disa-h1 disa-h2"
die() { echo "netns_up: $*" >&2; [ -n "${KEEP:-}" ] || sh "$(dirname "$0")/netns_down.sh" > /dev/null 2>&1; exit 1; }
[ "$(id -u)" = 0 ] || { echo "netns_up: needs root (CAP_NET_ADMIN)" >&2; exit 1; }
command -v ip > /dev/null || { echo "netns_up: ip (iproute2) not found: run 'make deps-cluster'" >&2; exit 1; }
for h in $HOSTS; do
    ! ip netns list | grep -qw "$h" || { echo "netns_up: namespace $h exists (tests/cluster/netns_down.sh removes it)" >&2; exit 1; }
done
hosts_file() {
    printf '127.0.0.1 localhost\n%s.10 disa-h0\n%s.11 disa-h1\n%s.12 disa-h2\n' $NET $NET $NET
}
for h in $HOSTS; do
    ip netns add "$h" || die "cannot create network namespace $h (no CAP_NET_ADMIN?)"
    ip -n "$h" link set lo up || die "lo up in $h"
    mkdir -p "/etc/netns/$h" && hosts_file > "/etc/netns/$h/hosts" || die "cannot write /etc/netns/$h/hosts"
done
ip -n disa-h0 link add br0 type bridge || die "cannot create a bridge in disa-h0"
ip -n disa-h0 addr add $NET.10/24 dev br0 || die "address on br0"
ip -n disa-h0 link set br0 up || die "br0 up"
for n in 1 2; do
    h=disa-h$n
    ip -n "$h" link add eth0 type veth peer name "v-h$n" netns disa-h0 || die "cannot create the veth pair of $h"
    ip -n disa-h0 link set "v-h$n" master br0 || die "v-h$n into br0"
    ip -n disa-h0 link set "v-h$n" up || die "v-h$n up"
    ip -n "$h" addr add "$NET.1$n/24" dev eth0 || die "address of $h"
    ip -n "$h" link set eth0 up || die "eth0 up in $h"
done
# The bridge forwards once its ports leave the listening state (no STP: immediately).
i=0
until ip netns exec disa-h1 ping -c 1 -W 1 $NET.12 > /dev/null 2>&1 && ip netns exec disa-h0 ping -c 1 -W 1 $NET.11 > /dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 20 ] && die "disa-h1 cannot reach disa-h2 over the bridge"
    sleep 0.2
done
echo "netns_up: disa-h0 (br0 $NET.10), disa-h1 ($NET.11), disa-h2 ($NET.12) on $NET.0/24"
