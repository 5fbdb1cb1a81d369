#!/bin/sh
# Suite: hostile helpers. One broker runs a witness (ping + routed request every 2 ms), two good
# helpers and a hostile helper (Tests/Hostile/hostile.c) that runs 31 attacks in turn. Per attack:
# broker up, expected log line, no fd leak, RSS under a cap, witness served (latency ratio vs its
# baseline printed). Prints one line per attack and "hostile: N passed, M failed".
# Needs root (uids, namespaces) and the `make test` build in .build/debug (PRIVSEP_BIN overrides).
cd "$(dirname "$0")/../.." || exit 2
exec python3 Tests/Hostile/run.py "$@"
