#!/bin/sh
# `make demo`: the broker with four helpers in four languages (shell, Swift, C, Python), each in
# its own sandbox. The shell helper drives the scenario: a request routed to the Swift helper,
# one to the C helper, an event to the Python helper, a denied request, an invalid one, and a
# ping answered by the broker. Then the broker is stopped with SIGTERM and shuts down cleanly.
#
# `make demo` has already run `swift build`; the C helper is built here.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
bin=${PRIVSEP_BIN:-.build/debug}
[ -x "$bin/privsep" ] && [ -x "$bin/swift-helper" ] || swift build
[ "$(id -u)" = 0 ] || { echo "demo: the broker sets uids and namespaces: run as root"; exit 1; }

work=$(mktemp -d /tmp/privsep-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
chmod 755 "$work"

# The C helper, against the C client library.
make -s -C clients/c >/dev/null
cc -O2 -Wall -Wextra -Werror -Iclients/c/include -o "$work/adder" examples/demo/adder.c \
    clients/c/build/libprivsep.a -ljansson

sed -e "s|@REPO@|$repo|g" -e "s|@SWIFT_HELPER@|$repo/$bin/swift-helper|g" -e "s|@ADDER@|$work/adder|g" \
    examples/demo/demo.json.in >"$work/demo.json"

cat <<'TEXT'
privsep demo: one broker, four helpers in four languages, each in its own sandbox
(its own uid, a read-only root, no network, no capabilities, seccomp, Landlock).
The broker's log follows; lines tagged [client] are the scenario's steps.

TEXT

# Run the broker; when the client says "demo finished", stop it as an operator would.
: >"$work/log"
"$bin/privsep" run "$work/demo.json" 2>"$work/log" &
broker=$!
tail -n +1 -f "$work/log" --pid="$broker" |
    sed -u -E -e 's/^[0-9T:.-]+Z //' -e 's/ stream=std(out|err)$//' |
    while IFS= read -r line; do
        printf '%s\n' "$line"
        case $line in
        # The scenario is over (or the driver died): stop the broker as an operator would.
        *"[client] demo finished"* | *"[client] helper exited"*) kill -TERM "$broker" 2>/dev/null ;;
        esac
    done &
viewer=$!
# A bound on the whole run, in case a helper hangs.
(sleep 120 && kill -TERM "$broker" 2>/dev/null) &
watchdog=$!
status=0
wait "$broker" || status=$?
wait "$viewer" || true
kill "$watchdog" 2>/dev/null || true

echo
if [ "$status" = 0 ] && grep -q '\[client\] demo finished' "$work/log"; then
    echo "demo: the broker stopped cleanly (exit status 0)"
else
    echo "demo: FAILED (broker exit status $status)"
    exit 1
fi
