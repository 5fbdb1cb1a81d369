#!/bin/sh
# client: the demo's shell helper. It drives the scenario: each numbered step below is one
# message through the broker, and its stdout lines appear in the broker's log as [client].
# shellcheck disable=SC1091 # privsep.sh is bound into the sandbox at run time
. /opt/privsep/clients/sh/privsep.sh || exit 1

nnp=$(awk '/^NoNewPrivs:/ { print $2 }' /proc/self/status)
seccomp=$(awk '/^Seccomp:/ { print $2 }' /proc/self/status)
if (: >/written-by-client) 2>/dev/null; then root=WRITABLE; else root="Read-only file system"; fi
echo "sandbox: uid=$(id -u) gid=$(id -g) NoNewPrivs=$nnp Seccomp=$seccomp root=$root"

privsep_hello >/dev/null || exit 1

step() { echo "--- $*"; }

step "1. demo.upper: shell -> broker -> Swift helper"
echo "    reply: $(privsep_request demo.upper '{"text":"hello from a shell helper"}')"

step "2. demo.add: shell -> broker -> C helper"
echo "    reply: $(privsep_request demo.add '{"a":40,"b":2}')"

step "3. demo.note (an event): shell -> broker -> Python helper"
privsep_event demo.note '{"text":"buy milk"}'
echo "    reply to demo.notes: $(privsep_request demo.notes '{}')"

step "4. demo.secret: not in this helper's may_send"
if out=$(privsep_request demo.secret '{}'); then echo "    UNEXPECTED: $out"; else echo "    refused: $out"; fi

step "5. demo.add with a string where the schema says integer"
if out=$(privsep_request demo.add '{"a":"forty","b":2}'); then echo "    UNEXPECTED: $out"; else echo "    refused: $out"; fi

step "6. privsep.ping, answered by the broker itself"
echo "    reply: $(privsep_request privsep.ping '{"seq":6}')"

privsep_log notice "demo finished"
# Wait for the broker's privsep.shutdown, then exit cleanly.
while :; do
    msg=$(privsep_recv)
    case $? in
    0) [ "$(printf '%s' "$msg" | jq -r '.type // empty')" = privsep.shutdown ] && exit 0 ;;
    2) continue ;;
    *) exit 0 ;;
    esac
done
