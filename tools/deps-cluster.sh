#!/bin/sh
# Installs the Debian packages of the test cluster (make deps-cluster): SLURM's controller,
# node daemon and client commands with MUNGE authentication (tests/cluster/slurm_up.sh),
# and iproute2, ping and unshare for the network-namespace hosts (tests/cluster/netns_up.sh).
# As root: apt-get installs what is missing. Otherwise: prints the exact command.
# The daemons are started only by tests/cluster/*_up.sh: the packages' own services are
# masked by policy-rc.d while installing, so a workstation does not get a SLURM
# controller running at boot.
PKGS="slurm-wlm slurmctld slurmd slurm-client slurm-wlm-basic-plugins munge iproute2 iputils-ping util-linux"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "deps-cluster: all Debian packages present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps-cluster: missing:$missing"
    echo "deps-cluster: run: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing"
    exit 1
fi
echo "deps-cluster: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Keep the packages' init scripts from starting munged/slurmctld/slurmd during the install
# (only when no policy-rc.d exists already; it is removed again afterwards).
prc=/usr/sbin/policy-rc.d
own_prc=0
if [ ! -e $prc ]; then
    printf '#!/bin/sh\nexit 101\n' > $prc && chmod 755 $prc && own_prc=1
fi
st=0
apt-get update -qq || st=1
# shellcheck disable=SC2086
[ $st = 0 ] && { apt-get install -y -qq --no-install-recommends $missing || st=1; }
[ $own_prc = 1 ] && rm -f $prc
exit $st
