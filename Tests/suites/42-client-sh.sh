#!/bin/sh
# Suite: the shell client (clients/sh/privsep.sh). shellcheck -s sh, then under dash and under
# bash: its unit tests against a raw peer, the conformance vectors (fd cases n/a), the scenario
# helper and the docs' minimal helper against the stand-in broker.
# One line per step (each step's own per-case lines above it), then "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 2
suite=client-sh
. Tests/suites/lib/client-suite.sh
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

finish
