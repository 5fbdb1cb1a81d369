#!/bin/sh
# Broker benchmarks: raw socketpair baselines (ping-pong, ping-pong with SCM_RIGHTS, one-way
# writes) beside the real release broker (`privsep run`) with sandboxed C helpers: privsep.ping,
# a routed request, routed one-way events, privsep.file.open with its descriptor, RSS with 100
# idle and 100 busy helpers, and scaling at 1, 10, 100, 500 helpers. Runs in each placement of
# BENCH_PLACEMENT (default: both; same-cpu pins everything to CPU 0 with taskset). Needs root;
# `make bench` has built the release broker. BENCH_BIN: the directory of the release `privsep`
# and `privsep-sandbox` (default .build/release; another scratch path's release directory).
set -eu
cd "$(dirname "$0")/../../.."
bin=${BENCH_BIN:-.build/release}
if [ "$(id -u)" != 0 ]; then echo "broker: skipped (needs root)"; exit 0; fi
[ -x "$bin/privsep" ] || { echo "broker: $bin/privsep not built (swift build -c release)"; exit 1; }
make -s -C clients/c >/dev/null
work=$(mktemp -d /tmp/privsep-broker-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
chmod 755 "$work"
cc -O2 -Wall -Wextra -Iclients/c/include -o "$work/brokerbench" Tests/Benchmarks/broker/brokerbench.c \
    clients/c/build/libprivsep.a -ljansson
for placement in ${BENCH_PLACEMENT:-same-cpu free}; do
    case $placement in
    same-cpu) taskset -c 0 python3 Tests/Benchmarks/broker/bench.py "$work" "$bin/privsep" "$work/brokerbench" same-cpu ;;
    free) python3 Tests/Benchmarks/broker/bench.py "$work" "$bin/privsep" "$work/brokerbench" free ;;
    *) echo "broker: unknown placement $placement"; exit 1 ;;
    esac
done
