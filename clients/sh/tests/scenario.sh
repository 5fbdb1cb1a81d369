#!/bin/sh
# The scenario helper of clients/python/tests/fakebroker.py (--no-fds) written with privsep.sh.
# shellcheck disable=SC1091 # sourced by a computed path
. "$(dirname "$0")/../privsep.sh" || exit 1
trap privsep_close EXIT

privsep_hello >/dev/null || exit 1
body=$(privsep_request privsep.ping '{"seq":1}') || exit 1
[ "$body" = '{"seq":1}' ] || exit 1

# What arrived while the ping waited: an event, then a request to serve.
while msg=$(privsep_recv); do
    kind=$(printf '%s' "$msg" | jq -r 'if has("id") then "request" else "event" end')
    type=$(printf '%s' "$msg" | jq -r .type)
    if [ "$kind" = event ] && [ "$type" = test.notice ]; then
        privsep_event test.seen "$(printf '%s' "$msg" | jq -c '{notice: .body.n}')" || exit 1
    elif [ "$kind" = request ] && [ "$type" = test.echo ]; then
        privsep_reply "$(printf '%s' "$msg" | jq .id)" "$(printf '%s' "$msg" | jq -c .body)" || exit 1
        break
    fi
done

if code=$(privsep_request test.fail 2>/dev/null); then
    exit 1
fi
privsep_event test.error_seen "$(jq -cn --arg c "$code" '{code: $c}')" || exit 1

privsep_log info "scenario done" || exit 1
privsep_request test.bye >/dev/null || exit 1
