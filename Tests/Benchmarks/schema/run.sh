#!/bin/sh
# bench-schema: our validator against python jsonschema (Draft202012Validator.is_valid) on the
# same schema and instances, in the same run. Builds nothing: `make bench` has already run
# `swift build -c release`.
set -eu
cd "$(dirname "$0")/../../.."
binary=${BENCH_SCHEMA:-.build/release/bench-schema}
if [ ! -x "$binary" ]; then
    echo "bench-schema: $binary is missing; run 'swift build -c release' first" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
"$binary" --emit "$work"
python_figures=""
if command -v python3 >/dev/null 2>&1 && python3 -c 'import jsonschema' 2>/dev/null; then
    python_figures=$(python3 - "$work" <<'PY'
import json, sys, timeit, jsonschema
work = sys.argv[1]
schema = json.load(open(work + "/schema.json"))
validator = jsonschema.Draft202012Validator(schema)
figures = []
for name in ("valid", "invalid"):
    instance = json.load(open(work + "/" + name + ".json"))
    assert validator.is_valid(instance) == (name == "valid")
    number = 20000
    samples = timeit.repeat(lambda: validator.is_valid(instance), number=number, repeat=5)
    samples.sort()
    figures.append("%.1f" % (samples[len(samples) // 2] / number * 1e9))
print(" ".join(figures))
PY
)
    echo "python jsonschema $(python3 -c 'import jsonschema, importlib.metadata as m; print(m.version("jsonschema"))')"
else
    echo "bench-schema: python3 with jsonschema not found; printing our figures only"
fi
# shellcheck disable=SC2086
out=$("$binary" $python_figures)
printf '%s\n' "$out"
# With BENCH_OUT set (Tests/Benchmarks/run.sh): valid and invalid as JSON lines: our median with
# the fastest and slowest batch, python's median.
[ -z "${BENCH_OUT:-}" ] || printf '%s\n' "$out" | awk -v p="${BENCH_PLACEMENT:-n/a}" '
    /^bench-schema:/ { reps = $6 }
    $1 == "ours" && ($2 == "valid" || $2 == "invalid") && $4 == "ns/validation" {
        ours[$2] = $3; lo = $6; hi = $8; gsub(/[^0-9.]/, "", lo); gsub(/[^0-9.]/, "", hi); low[$2] = lo; high[$2] = hi }
    $1 == "python" && ($4 == "valid" || $4 == "invalid") { py[$4] = $5 }
    END { for (k = 1; k <= 2; k++) { kind = k == 1 ? "valid" : "invalid"
        if (py[kind] == "") printf "{\"figure\":\"schema validation (%s) vs python jsonschema\",\"placement\":\"%s\",\"ours\":%s,\"baseline\":null,\"unit\":\"ns\",\"ratio\":null,\"goal\":\"<= 0.01x (100x faster)\",\"met\":null,\"min\":%s,\"max\":%s,\"reps\":%d,\"note\":\"python jsonschema not installed\"}\n", kind, p, ours[kind], low[kind], high[kind], reps
        else printf "{\"figure\":\"schema validation (%s) vs python jsonschema\",\"placement\":\"%s\",\"ours\":%s,\"baseline\":%s,\"unit\":\"ns\",\"ratio\":%.5f,\"goal\":\"<= 0.01x (100x faster)\",\"met\":%s,\"min\":%s,\"max\":%s,\"reps\":%d}\n", kind, p, ours[kind], py[kind], ours[kind] / py[kind], (py[kind] / ours[kind] >= 100) ? "true" : "false", low[kind], high[kind], reps } }' >>"$BENCH_OUT"
