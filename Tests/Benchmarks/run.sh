#!/bin/sh
# `make bench`: every benchmark, release builds, one table. Each Tests/Benchmarks/<name>/run.sh
# runs standalone and prints its own figures; here each runs twice, pinned to CPU 0 (taskset,
# inherited by everything it starts) and free, with BENCH_PLACEMENT naming the placement and
# BENCH_OUT naming the file its JSON lines go to (one object per figure, docs/performance.md).
# Then report.py prints the table and writes it as JSON to $BENCH_JSON (Tests/out/bench.json).
set -eu
cd "$(dirname "$0")/../.."
json=${BENCH_JSON:-Tests/out/bench.json}
mkdir -p "$(dirname "$json")"
lines=$(mktemp /tmp/privsep-bench.XXXXXX)
trap 'rm -f "$lines"' EXIT INT TERM
failed=""
started=$(date +%s)
for script in Tests/Benchmarks/*/run.sh; do
    [ -e "$script" ] || continue
    name=$(basename "$(dirname "$script")")
    for placement in ${BENCH_PLACEMENTS:-same-cpu free}; do
        echo "=== bench: $name ($placement), at $(($(date +%s) - started)) s"
        pin=""
        [ "$placement" = same-cpu ] && pin="taskset -c 0"
        # shellcheck disable=SC2086
        if ! BENCH_OUT=$lines BENCH_PLACEMENT=$placement $pin sh "$script"; then
            echo "=== bench: $name ($placement) FAILED"
            failed="$failed $name/$placement"
        fi
    done
done
echo "=== bench: all run in $(($(date +%s) - started)) s"
# shellcheck disable=SC2086
python3 Tests/Benchmarks/report.py "$lines" "$json" $failed
