#!/bin/sh
# Suite: every fuzzer (Tests/Fuzz/run.sh: wire, json, schema, config, c_decode) runs briefly as a
# smoke: FUZZ_SMOKE_SECONDS each (default 10), seeded from the conformance vectors. A target the
# toolchain cannot build (no libFuzzer runtime) is skipped with the reason. The first run builds
# the instrumented library modules into .build-fuzz (a few minutes on 2 cores); later runs are
# incremental. `make fuzz` runs the same targets for FUZZ_SECONDS (default 600) each.
cd "$(dirname "$0")/../.." || exit 2
FUZZ_SECONDS=${FUZZ_SMOKE_SECONDS:-10} FUZZ_DIR=${FUZZ_DIR:-/tmp/privsep-fuzz-smoke} exec sh Tests/Fuzz/run.sh
