#!/bin/sh
# shellcheck disable=SC2016 # the case scripts expand in the shell under test
# Unit tests of privsep.sh under one shell ($1: dash or bash): each case runs a helper
# script under that shell against peer.py, a raw scripted peer on a real socketpair.
# Prints one line per case and "N passed, N failed".
sh_under_test=${1:-sh}
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/../privsep.sh
label=sh_unit_$sh_under_test
passed=0 failed=0

# The hex of one frame around JSON.
hexframe() {
    printf '%08x' "$(printf '%s' "$1" | wc -c)"
    printf '%s' "$1" | od -An -tx1 | tr -d ' \n'
}

# check NAME SCRIPT PEER-ACTION...: the script runs after sourcing privsep.sh and must exit 0.
# The scripts are single-quoted on purpose: they expand in the shell under test.
check() {
    name=$1 script=$2
    shift 2
    if python3 "$here/peer.py" "$@" -- "$sh_under_test" -c ". '$lib' || exit 9; $script" 2>"$here/.err.$$"; then
        echo "ok   $label: $name"
        passed=$((passed + 1))
    else
        echo "FAIL $label: $name: $(tr '\n' ' ' <"$here/.err.$$")"
        failed=$((failed + 1))
    fi
    rm -f "$here/.err.$$"
}

check "event: framing on the wire" \
    'privsep_event a.b "{\"k\":1}"' \
    'expect:{"type":"a.b","body":{"k":1}}'

check "send: refuses from, fds, bad type, non-JSON; nothing reaches the wire" \
    '! privsep_send "{\"type\":\"a.b\",\"from\":\"x\"}" && ! privsep_send "{\"type\":\"A\"}" &&
     ! privsep_send nope && ! privsep_send "{\"type\":\"a.b\",\"fds\":1}" &&
     ! privsep_send "{\"re\":1,\"type\":\"a.b\"}" && privsep_event a.b' \
    'expect:{"type":"a.b","body":{}}'

check "request: prints the reply body" \
    'out=$(privsep_request t.x "{\"q\":2}") && [ "$out" = "{\"a\":1}" ]' \
    'expect:{"type":"t.x","id":1,"body":{"q":2}}' "write:$(hexframe '{"re":1,"from":"broker","body":{"a":1}}')"

check "request: error reply prints the code, status 1" \
    'out=$(privsep_request t.x 2>/dev/null); st=$?; [ "$st" = 1 ] && [ "$out" = privsep.denied ]' \
    'expect:{"type":"t.x","id":1,"body":{}}' \
    "write:$(hexframe '{"re":1,"error":{"code":"privsep.denied","message":"no"}}')"

check "request: error_data prints the error reply's data as compact JSON" \
    'out=$(privsep_request t.x 2>/dev/null); st=$?; [ "$st" = 1 ] && [ "$out" = privsep.invalid ] &&
     [ "$(privsep_error_data)" = "{\"errors\":[{\"instanceLocation\":\"/seq\",\"error\":\"below 0\"}]}" ]' \
    'expect:{"type":"t.x","id":1,"body":{}}' \
    "write:$(hexframe '{"re":1,"from":"broker","error":{"code":"privsep.invalid","message":"bad body",
      "data": { "errors": [ {"instanceLocation": "/seq", "error": "below 0"} ] }}}')"

check "request: error_data is empty for an error without data, and after other failures" \
    'privsep_request t.x >/dev/null 2>&1; [ "$(privsep_error_data)" = "\"why\"" ] &&
     privsep_request t.y >/dev/null 2>&1; [ $? = 1 ] && ! privsep_error_data >/dev/null &&
     privsep_request t.z >/dev/null 2>&1; [ "$(privsep_error_data)" = "\"again\"" ] &&
     ! privsep_send nope 2>/dev/null && [ -z "$(privsep_error_data)" ]' \
    'expect:{"type":"t.x","id":1,"body":{}}' \
    "write:$(hexframe '{"re":1,"error":{"code":"privsep.denied","message":"no","data":"why"}}')" \
    'expect:{"type":"t.y","id":2,"body":{}}' \
    "write:$(hexframe '{"re":2,"error":{"code":"privsep.denied","message":"no"}}')" \
    'expect:{"type":"t.z","id":3,"body":{}}' \
    "write:$(hexframe '{"re":3,"error":{"code":"privsep.denied","message":"no","data":"again"}}')"

check "request: ids increase, also across command substitutions" \
    'a=$(privsep_request t.x) && b=$(privsep_request t.y) && [ "$a$b" = "{}{}" ]' \
    'expect:{"type":"t.x","id":1,"body":{}}' "write:$(hexframe '{"re":1,"body":{}}')" \
    'expect:{"type":"t.y","id":2,"body":{}}' "write:$(hexframe '{"re":2,"body":{}}')"

check "request: keeps what arrives meanwhile for privsep_recv, in order" \
    'privsep_request t.x >/dev/null && e=$(privsep_recv) && r=$(privsep_recv) &&
     [ "$(printf %s "$e" | jq -r .type)" = t.notice ] && [ "$(printf %s "$r" | jq .id)" = 5 ] &&
     privsep_reply 5 "{\"done\":true}"' \
    'expect:{"type":"t.x","id":1,"body":{}}' \
    "write:$(hexframe '{"type":"t.notice","from":"broker"}')$(hexframe '{"type":"t.echo","id":5,"body":{}}')$(hexframe '{"re":1,"body":{}}')" \
    'expect:{"re":5,"body":{"done":true}}'

check "request: a refused message does not end the wait" \
    'out=$(privsep_request t.x 2>/dev/null) && [ "$out" = "{}" ]' \
    'expect:{"type":"t.x","id":1,"body":{}}' \
    "write:$(hexframe '{"type":"a.b","x":1}')$(hexframe '{"re":1,"body":{}}')"

check "reply_error: the error envelope" \
    'privsep_reply_error 7 privsep.not_found "no such thing"' \
    'expect:{"re":7,"error":{"code":"privsep.not_found","message":"no such thing"}}'

check "log: a privsep.log event" \
    'privsep_log warning "disk low"' \
    'expect:{"type":"privsep.log","body":{"level":"warning","message":"disk low"}}'

check "hello: applies max_frame; a larger frame is not sent" \
    'privsep_hello >/dev/null && ! privsep_event a.b "{\"p\":\"$(printf %070d 0)\"}" 2>/dev/null &&
     grep -q "privsep.too_large" "$PRIVSEP_STATE/error" && privsep_event a.c' \
    'expect:{"type":"privsep.hello","id":1,"body":{"protocol":1,"client":"privsep.sh/0.1.0"}}' \
    "write:$(hexframe '{"re":1,"body":{"helper":"t","protocol":1,"max_frame":64,"may_send":[],"serves":[],"receives":[]}}')" \
    'expect:{"type":"a.c","body":{}}'

check "receive: a 4 GiB length prefix fails before reading; the failure is final" \
    'out=$(privsep_request t.x 2>/dev/null); st=$?; [ "$st" = 2 ] && [ "$out" = privsep.too_large ] &&
     ! privsep_event a.b 2>/dev/null' \
    'expect:{"type":"t.x","id":1,"body":{}}' 'write:ffffffff'

check "receive: length 1 is too short" \
    '! privsep_recv >/dev/null 2>&1 && grep -q "frame_too_short" "$PRIVSEP_STATE/error"' \
    'write:000000017b'

check "receive: a frame that declares fds fails (no fds in a shell)" \
    '! privsep_recv >/dev/null 2>&1 && grep -q "fds_missing" "$PRIVSEP_STATE/error"' \
    "write:$(hexframe '{"type":"a.b","fds":1}')"

check "receive: end of stream is privsep.unavailable" \
    'privsep_recv >/dev/null 2>&1; [ $? = 1 ] && grep -q "connection_closed" "$PRIVSEP_STATE/error"' \
    'close'

check "receive: truncated body" \
    'privsep_recv >/dev/null 2>&1; [ $? = 1 ] && grep -q "truncated_frame" "$PRIVSEP_STATE/error"' \
    'write:000000107b227479' 'close'

check "receive: a wait is bounded (PRIVSEP_TIMEOUT)" \
    'PRIVSEP_TIMEOUT=1; privsep_recv >/dev/null 2>&1; [ $? = 2 ] && grep -q "privsep.timeout" "$PRIVSEP_STATE/error"'

check "open: PRIVSEP_FD must be a number, PRIVSEP_PROTOCOL 1" \
    '! (PRIVSEP_FD=x privsep_open 2>/dev/null) && ! (PRIVSEP_PROTOCOL=2 privsep_open 2>/dev/null)'

echo "$label: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
