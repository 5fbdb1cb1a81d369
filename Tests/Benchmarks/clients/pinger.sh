#!/bin/sh
# The shell pinger of the client benchmark: privsep.ping round trips with clients/sh/privsep.sh.
PRIVSEP_TIMEOUT=600    # the others' turns come first
export PRIVSEP_TIMEOUT
# shellcheck disable=SC1090,SC1091 # bound into the sandbox at run time
. "${PRIVSEP_SH:-/opt/privsep/clients/sh/privsep.sh}" || exit 1
trap privsep_close EXIT

privsep_hello bench-sh/1 >/dev/null || exit 1
while :; do
    turn=$(privsep_request bench.clients.turn '{}') || exit 1
    [ "$(printf '%s' "$turn" | jq -r .stop)" = true ] && exit 0
    rounds=$(printf '%s' "$turn" | jq -r .rounds)
    start=$(date +%s%N)
    seq=1
    while [ "$seq" -le "$rounds" ]; do
        privsep_request privsep.ping "{\"seq\":$seq}" >/dev/null || exit 1
        seq=$((seq + 1))
    done
    ns=$(($(date +%s%N) - start))
    privsep_request bench.clients.done "{\"client\":\"sh\",\"rounds\":$rounds,\"ns\":$ns}" >/dev/null || exit 1
done
