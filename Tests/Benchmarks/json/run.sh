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
exec "$binary" "$@"
