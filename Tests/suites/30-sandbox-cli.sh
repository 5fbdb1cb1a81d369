#!/bin/sh
# shellcheck disable=SC2016 # the sh -c bodies are single-quoted on purpose: $1 is their argument
# privsep sandbox and privsep doctor as a user runs them: the subcommand execs the launcher
# beside it (same options, same sequence), failures exit 126 with the step named on stderr,
# doctor reports the kernel as text and JSON. The acceptance cases live in PrivSepSandboxTests.
set -u
cd "$(dirname "$0")/../.." || exit 2
PRIVSEP=${PRIVSEP:-.build/debug/privsep}
[ -x "$PRIVSEP" ] || { echo "30-sandbox-cli: $PRIVSEP not built (run swift build)"; exit 1; }
[ -x "$(dirname "$PRIVSEP")/privsep-sandbox" ] || { echo "30-sandbox-cli: privsep-sandbox not built"; exit 1; }

fail=0
check() { # description, command...
    what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

out=$("$PRIVSEP" doctor --json)
check "doctor --json is JSON with a Landlock ABI" sh -c 'printf "%s" "$1" | jq -e ".kernel.landlock_abi | type == \"number\"" >/dev/null' sh "$out"
check "doctor --json lists the default profile's layers" sh -c 'printf "%s" "$1" | jq -e "[.default_profile[].layer] | index(\"seccomp\") != null" >/dev/null' sh "$out"
check "doctor prints text" sh -c '"$1" doctor | grep -q "Landlock ABI"' sh "$PRIVSEP"

bpf=$(mktemp)
"$PRIVSEP" sandbox --export-seccomp "$bpf" -- /usr/bin/true; rc=$?
size=$(wc -c < "$bpf")
check "--export-seccomp writes a BPF program (8-byte instructions)" sh -c '[ "$1" = 0 ] && [ "$2" -gt 64 ] && [ $(($2 % 8)) = 0 ]' sh "$rc" "$size"
"$PRIVSEP" sandbox --export-seccomp "$bpf" --seccomp none -- /usr/bin/true 2>/dev/null; rc=$?
check "--export-seccomp with seccomp none is an error" [ "$rc" = 2 ]
rm -f "$bpf"

if [ "$(id -u)" != 0 ]; then
    echo "30-sandbox-cli: SKIP the sandbox runs: not root"
    # Not root: a user namespace maps only the caller's own ids; --uid for another is refused by name.
LAUNCHER=$(cd "$(dirname "$PRIVSEP")" && pwd)/privsep-sandbox
if command -v setpriv >/dev/null 2>&1 && setpriv --reuid 65534 --regid 65534 --clear-groups -- test -x "$LAUNCHER"; then
    check "unprivileged: runs in a user namespace as the caller" sh -c \
        '[ "$(setpriv --reuid 65534 --regid 65534 --clear-groups -- "$1" -- /bin/sh -c "id -u; grep NoNewPrivs /proc/self/status")" = "$(printf "65534\nNoNewPrivs:\t1")" ]' sh "$LAUNCHER"
    err=$(setpriv --reuid 65534 --regid 65534 --clear-groups -- "$LAUNCHER" --uid 61184 -- /usr/bin/true 2>&1); rc=$?
    check "unprivileged: --uid of another user is an error naming --uid" sh -c '[ "$1" = 126 ] && printf "%s" "$2" | grep -q "step .uid. failed.*--uid"' sh "$rc" "$err"
else
    echo "30-sandbox-cli: SKIP the unprivileged runs: setpriv missing or $LAUNCHER not reachable by uid 65534"
fi

exit "$fail"
fi

check "sandbox runs a program as nobody by default" sh -c '[ "$("$1" sandbox -- /usr/bin/id -u)" = 65534 ]' sh "$PRIVSEP"
check "sandbox honours --uid/--gid" sh -c '[ "$("$1" sandbox --uid 65300 --gid 65300 -- /usr/bin/id -g)" = 65300 ]' sh "$PRIVSEP"
check "the helper's / is read-only" sh -c '"$1" sandbox -- /bin/sh -c "touch /x" 2>/dev/null; [ $? -ne 0 ]' sh "$PRIVSEP"
check "no network interfaces but lo" sh -c '[ "$("$1" sandbox -- /bin/sh -c "tail -n +3 /proc/self/net/dev | wc -l")" = 1 ]' sh "$PRIVSEP"

err=$("$PRIVSEP" sandbox --bogus -- /usr/bin/true 2>&1); rc=$?
check "an unknown option exits 126" [ "$rc" = 126 ]
check "and names the step and the option" sh -c 'printf "%s" "$1" | grep -q "step .options. failed.*--bogus"' sh "$err"

err=$("$PRIVSEP" sandbox -- /nonexistent/program 2>&1); rc=$?
check "a missing program exits 126" [ "$rc" = 126 ]
check "and names step exec and ENOENT" sh -c 'printf "%s" "$1" | grep -q "step .exec. failed: errno 2"' sh "$err"

err=$("$PRIVSEP" sandbox --profile none -- /usr/bin/true 2>&1); rc=$?
check "--profile none runs" [ "$rc" = 0 ]
check "and warns loudly" sh -c 'printf "%s" "$1" | grep -q "WARNING"' sh "$err"

err=$("$PRIVSEP" sandbox --test-disable-layer seccomp -- /usr/bin/true 2>&1); rc=$?
check "test switches are refused without PRIVSEP_TEST_LAYER_SWITCH=1" sh -c '[ "$1" = 126 ] && printf "%s" "$2" | grep -q "test-only"' sh "$rc" "$err"

# Not root: a user namespace maps only the caller's own ids; --uid for another is refused by name.
LAUNCHER=$(cd "$(dirname "$PRIVSEP")" && pwd)/privsep-sandbox
if command -v setpriv >/dev/null 2>&1 && setpriv --reuid 65534 --regid 65534 --clear-groups -- test -x "$LAUNCHER"; then
    check "unprivileged: runs in a user namespace as the caller" sh -c \
        '[ "$(setpriv --reuid 65534 --regid 65534 --clear-groups -- "$1" -- /bin/sh -c "id -u; grep NoNewPrivs /proc/self/status")" = "$(printf "65534\nNoNewPrivs:\t1")" ]' sh "$LAUNCHER"
    err=$(setpriv --reuid 65534 --regid 65534 --clear-groups -- "$LAUNCHER" --uid 61184 -- /usr/bin/true 2>&1); rc=$?
    check "unprivileged: --uid of another user is an error naming --uid" sh -c '[ "$1" = 126 ] && printf "%s" "$2" | grep -q "step .uid. failed.*--uid"' sh "$rc" "$err"
else
    echo "30-sandbox-cli: SKIP the unprivileged runs: setpriv missing or $LAUNCHER not reachable by uid 65534"
fi

exit "$fail"
