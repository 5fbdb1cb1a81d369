#!/bin/sh
# Runs every suite of `make test`: `swift test`, then each Tests/suites/*.sh in name order.
# A suite passes when it exits 0. The last line is the plain summary "N passed, N failed".
set -u
cd "$(dirname "$0")/.." || exit 2
mkdir -p Tests/out
passed=0
failed=0
failures=""

run_suite() {
    name=$1
    shift
    echo "=== suite: $name"
    start=$(date +%s)
    if "$@"; then
        passed=$((passed + 1))
        echo "=== suite: $name: ok ($(( $(date +%s) - start ))s)"
    else
        failed=$((failed + 1))
        failures="$failures $name"
        echo "=== suite: $name: FAILED ($(( $(date +%s) - start ))s)"
    fi
}

run_suite swift-test swift test
for script in Tests/suites/*.sh; do
    [ -e "$script" ] || continue
    run_suite "$(basename "$script" .sh)" sh "$script"
done

[ -n "$failures" ] && echo "failed suites:$failures"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
