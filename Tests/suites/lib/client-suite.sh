# Shared by the client suites (40-42), sourced from the repository root after setting `suite`
# (e.g. suite=client-c): the log directory, the stand-in broker, and `step`, which runs one
# step, shows its per-case lines, and counts it. The suite ends with `finish`.

out=Tests/out/$suite
rm -rf "$out"
mkdir -p "$out"
passed=0 failed=0

# The stand-in broker (clients/python/tests/fakebroker.py) runs a helper through a scenario.
broker() {
    python3 clients/python/tests/fakebroker.py "$@"
}

# step NAME COMMAND...
step() {
    name=$1
    shift
    if "$@" >"$out/$name.log" 2>&1; then
        grep -E '^(ok|FAIL|n/a) |(PASSED|FAILED|SKIPPED)|: [0-9]+ passed, [0-9]+ failed' "$out/$name.log"
        echo "ok   $suite: $name"
        passed=$((passed + 1))
    else
        grep -E '^(ok|FAIL|n/a) |(PASSED|FAILED|SKIPPED)|: [0-9]+ passed, [0-9]+ failed' "$out/$name.log"
        tail -n 30 "$out/$name.log" | sed 's/^/    /'
        echo "FAIL $suite: $name (log: $out/$name.log)"
        failed=$((failed + 1))
    fi
}

# The closing line; the suite's exit status.
finish() {
    echo "$suite: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
