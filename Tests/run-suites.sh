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

# `swift test` is bounded: a hung test process fails after 10 minutes instead of eating CI's
# budget, and is retried once, loudly, so one such hang does not hide every other result. The
# process group is killed, so no broker or helper of the hung run survives it. (The hang seen
# twice was in Foundation's Process, which the tests no longer use: children are started with
# posix_spawn and waited for on a pidfd with a deadline, Tests/PrivSepBrokerTests/Spawned.swift.
# The bound stays as a safety net.)
swift_test() {
    timeout --kill-after=20 600 swift test
    status=$?
    if [ "$status" = 124 ] || [ "$status" = 137 ]; then
        echo "run-suites: swift test did not finish in 600 s (status $status); running it once more"
        timeout --kill-after=20 600 swift test
        status=$?
    fi
    return "$status"
}

run_suite swift-test swift_test
for script in Tests/suites/*.sh; do
    [ -e "$script" ] || continue
    run_suite "$(basename "$script" .sh)" sh "$script"
done

[ -n "$failures" ] && echo "failed suites:$failures"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
