#!/bin/sh
# mpirun with the settings this project needs on workstations and CI:
# - Open MPI refuses to run as root unless told; the variables are set only for root.
# - more ranks than cores needs --oversubscribe.
# - a host that drops off the network would hang the job for minutes with Open MPI's
#   default TCP keepalive; these settings make mpirun notice a lost daemon within ~10 s
#   (tests/e2e/cluster_netns.sh cuts a link and measures it).
#   tools/mpirun.sh NP program args...
np=$1
shift
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
extra=""
[ "$np" -gt "$(nproc)" ] && extra="--oversubscribe"
# shellcheck disable=SC2086
exec mpirun -np "$np" $extra --bind-to none \
    --mca oob_tcp_keepalive_time 5 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3 "$@"
