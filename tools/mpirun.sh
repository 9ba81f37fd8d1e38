#!/bin/sh
# mpirun with the settings this project needs on workstations and CI:
# - Open MPI refuses to run as root unless told; the variables are set only for root.
# - more ranks than cores needs --oversubscribe.
#   tools/mpirun.sh NP program args...
np=$1
shift
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
extra=""
[ "$np" -gt "$(nproc)" ] && extra="--oversubscribe"
# shellcheck disable=SC2086
exec mpirun -np "$np" $extra --bind-to none "$@"
