#!/bin/sh
# Removes what tests/cluster/netns_up.sh made: ends every process still inside the
# namespaces disa-h0..2 (only test processes run there), deletes the namespaces (their
# veth links and bridge go with them) and /etc/netns/disa-h*. Safe when nothing is up.
for h in disa-h0 disa-h1 disa-h2; do
    if ip netns list 2> /dev/null | grep -qw "$h"; then
        for p in $(ip netns pids "$h" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
        ip netns del "$h" 2> /dev/null
    fi
    rm -rf "/etc/netns/$h"
done
rmdir /etc/netns 2> /dev/null
exit 0
