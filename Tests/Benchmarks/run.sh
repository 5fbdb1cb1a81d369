#!/bin/sh
# `make bench`: every benchmark, release builds. Each Tests/Benchmarks/*/run.sh prints its figures.
set -eu
cd "$(dirname "$0")/../.."
for script in Tests/Benchmarks/*/run.sh; do
    [ -e "$script" ] || continue
    echo "=== bench: $(basename "$(dirname "$script")")"
    sh "$script"
done
