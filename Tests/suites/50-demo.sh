#!/bin/sh
# `make demo` as a test: the broker with helpers in shell, Swift, C and Python. Checks that each
# step of the scenario produced what it should (routing across languages, an event, a denial, an
# invalid body, the broker's own ping) and that the broker stopped cleanly.
set -u
cd "$(dirname "$0")/../.." || exit 2
[ "$(id -u)" = 0 ] || { echo "50-demo: SKIP: the broker needs root"; exit 0; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM
sh examples/demo.sh >"$out" 2>&1
status=$?
fail=0
expect() { # description, fixed string
    if grep -qF -- "$2" "$out"; then echo "ok   $1"; else echo "FAIL $1: no line with: $2"; fail=1; fi
}
expect "shell -> Swift (demo.upper)" '[client]     reply: {"text":"HELLO FROM A SHELL HELPER"}'
expect "shell -> C (demo.add)" '[client]     reply: {"sum":42}'
expect "shell -> Python (event), then Python's reply" '[client]     reply to demo.notes: {"count":1,"last":"buy milk"}'
expect "Python saw the event stamped from the client" "[notes] noted: 'buy milk' (from client)"
expect "denied request" '[client]     refused: privsep.denied'
expect "invalid body" '[client]     refused: privsep.invalid'
expect "ping answered by the broker" '[client]     reply: {"seq":6}'
for helper in client upper adder notes; do
    if grep -F "[$helper] helper exited" "$out" | grep -qF 'status="exited with status 0"'; then
        echo "ok   $helper exited 0"
    else
        echo "FAIL $helper did not exit 0"; fail=1
    fi
done
expect "every helper sandboxed (C)" '[adder] sandbox: uid=61186 gid=61186 NoNewPrivs=1 Seccomp=2 root=Read-only file system'
expect "clean broker exit" 'demo: the broker stopped cleanly (exit status 0)'
if [ "$status" != 0 ] || [ "$fail" != 0 ]; then
    echo "--- demo output"
    cat "$out"
    exit 1
fi
