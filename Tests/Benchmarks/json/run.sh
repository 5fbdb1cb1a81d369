#!/bin/sh
# bench-json: our parse and parse+serialize against jansson on the 120-byte message.
# Builds nothing: `make bench` has already run `swift build -c release`.
set -eu
cd "$(dirname "$0")/../../.."
binary=.build/release/bench-json
if [ ! -x "$binary" ]; then
    echo "bench-json: $binary is missing; run 'swift build -c release' first" >&2
    exit 1
fi
out=$("$binary" "$@")
printf '%s\n' "$out"
# With BENCH_OUT set (Tests/Benchmarks/run.sh): the parse figure as one JSON line; the binary
# prints medians only, so min and max are null.
[ -z "${BENCH_OUT:-}" ] || printf '%s\n' "$out" | awk -v p="${BENCH_PLACEMENT:-n/a}" '
    /repetitions/ { reps = $4 }
    $1 == "parse" { printf "{\"figure\":\"JSON parse of the 120-byte message vs jansson\",\"placement\":\"%s\",\"ours\":%s,\"baseline\":%s,\"unit\":\"ns\",\"ratio\":%.3f,\"goal\":\"<= 0.333x (3x faster)\",\"met\":%s,\"min\":null,\"max\":null,\"reps\":%d}\n", p, $2, $3, $2 / $3, ($3 / $2 >= 3) ? "true" : "false", reps }' >>"$BENCH_OUT"
