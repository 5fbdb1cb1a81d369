#!/bin/sh
# Suite: the shell client (clients/sh/privsep.sh). shellcheck -s sh, then under dash and under
# bash: its unit tests against a raw peer, the conformance vectors (fd cases n/a), the scenario
# helper and the docs' minimal helper against the stand-in broker.
# One line per step (each step's own per-case lines above it), then "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 2
out=Tests/out/client-sh
rm -rf "$out"
mkdir -p "$out"
# The stand-in broker (clients/python/tests/fakebroker.py) runs a helper through a scenario.
broker() {
    python3 clients/python/tests/fakebroker.py "$@"
}
passed=0 failed=0

step() {
    name=$1
    shift
    if "$@" >"$out/$name.log" 2>&1; then
        grep -E '^(ok|FAIL|n/a) |: [0-9]+ passed, [0-9]+ failed' "$out/$name.log"
        echo "ok   client-sh: $name"
        passed=$((passed + 1))
    else
        grep -E '^(ok|FAIL|n/a) |: [0-9]+ passed, [0-9]+ failed' "$out/$name.log"
        tail -n 15 "$out/$name.log" | sed 's/^/    /'
        echo "FAIL client-sh: $name (log: $out/$name.log)"
        failed=$((failed + 1))
    fi
}

# The docs' minimal helper, sourcing the client from the tree.
doc_helper() {
    PRIVSEP_SH=clients/sh/privsep.sh
    export PRIVSEP_SH
    broker --scenario doc --label "sh_doc_$1" -- "$1" "$out/upper.sh"
}

awk '/^```sh$/ { f = 1; next } /^```$/ { if (f) exit } f' docs/client-sh.md >"$out/upper.sh"

step shellcheck shellcheck -s sh clients/sh/privsep.sh clients/sh/tests/unit.sh \
    clients/sh/tests/vectors.sh clients/sh/tests/scenario.sh "$out/upper.sh"
for shell in dash bash; do
    if ! command -v "$shell" >/dev/null 2>&1; then
        echo "FAIL client-sh: $shell is not installed"
        failed=$((failed + 1))
        continue
    fi
    step "unit-$shell" "$shell" clients/sh/tests/unit.sh "$shell"
    step "vectors-$shell" env PRIVSEP_SH_LABEL="sh_vectors_$shell" "$shell" clients/sh/tests/vectors.sh
    step "scenario-$shell" broker --no-fds --label "sh_scenario_$shell" -- "$shell" clients/sh/tests/scenario.sh
    step "doc-helper-$shell" doc_helper "$shell"
done

echo "client-sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
