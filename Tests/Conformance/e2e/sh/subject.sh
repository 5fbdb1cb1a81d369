#!/bin/sh
# The conformance scenario helper written with clients/sh/privsep.sh (runs under dash and bash).
# It plays each scenario against the peer through the broker and prints one line per scenario
# on stdout, which the broker logs tagged "subject":
#
#     RESULT <scenario> pass|fail|n/a <detail>
#
# The scenarios and their order are the same in every client's subject; see
# docs/conformance.md. Every wait is bounded by PRIVSEP_TIMEOUT seconds.
PRIVSEP_TIMEOUT=5
export PRIVSEP_TIMEOUT
# shellcheck disable=SC1090,SC1091 # bound into the sandbox at run time
. "${PRIVSEP_SH:-/opt/privsep/clients/sh/privsep.sh}" || exit 1
trap privsep_close EXIT

result() {
    printf 'RESULT %s %s %s\n' "$1" "$2" "$3"
}

# verdict SCENARIO STATUS DETAIL: pass when the status is 0.
verdict() {
    if [ "$2" = 0 ]; then result "$1" pass "$3"; else result "$1" fail "$3"; fi
}

# The value of a jq filter on JSON text ("" when it fails); show: the same, strings unquoted.
field() {
    printf '%s' "$1" | jq -c "$2" 2>/dev/null
}
show() {
    printf '%s' "$1" | jq -rc "$2" 2>/dev/null
}

# next_message: the next incoming envelope in $msg; waits are bounded, refusals skipped.
next_message() {
    while :; do
        msg=$(privsep_recv)
        case $? in
        0) return 0 ;;
        2) [ "$(privsep_error_reason)" = timeout ] && return 1 ;;
        *) return 1 ;;
        esac
    done
}

# hello
if ! hello=$(privsep_hello conformance-sh/1); then
    result hello fail "$(privsep_error_code) ($(privsep_error_reason))"
    exit 1
fi
field "$hello" '.helper == "subject" and .protocol == 1 and .max_frame == 1024
    and (.serves | index("conf.e2e.echo")) != null and (.receives | index("conf.e2e.notice")) != null
    and (.may_send | index("conf.e2e.upper")) != null' | grep -qx true
verdict hello $? "helper $(show "$hello" .helper), max_frame $(show "$hello" .max_frame)"

# ping
if reply=$(privsep_request privsep.ping '{"seq":7,"payload":"conformance"}'); then
    [ "$(field "$reply" '. == {"seq":7,"payload":"conformance"}')" = true ]
    verdict ping $? "echoed seq $(show "$reply" .seq)"
else
    result ping fail "error $reply"
fi

# request served by the peer (privsep_request prints the body only: from is not checked)
if reply=$(privsep_request conf.e2e.upper '{"text":"conformance"}'); then
    [ "$(field "$reply" .text)" = '"CONFORMANCE"' ]
    verdict request $? "text $(show "$reply" .text)"
else
    result request fail "error $reply"
fi

# serving a request: conf.e2e.call_me makes the peer send conf.e2e.echo, judged in conf.e2e.verdict
if reply=$(privsep_request conf.e2e.call_me '{}'); then
    served=no found=no
    while next_message; do
        if [ "$(field "$msg" '.type == "conf.e2e.echo" and has("id")')" = true ]; then
            privsep_reply "$(field "$msg" .id)" "$(field "$msg" '{nonce: .body.nonce}')" && served=yes
        elif [ "$(field "$msg" '.type == "conf.e2e.verdict" and (has("id") | not)')" = true ]; then
            [ "$served" = yes ] && [ "$(field "$msg" .body.ok)" = true ]
            verdict serve $? "peer: $(show "$msg" .body.detail)"
            found=yes
            break
        fi
    done
    [ "$found" = yes ] || result serve fail "no conf.e2e.verdict: $(privsep_error_code) ($(privsep_error_reason))"
else
    result serve fail "conf.e2e.call_me: error $reply"
fi

# events both ways: conf.e2e.note out (listed by conf.e2e.seen), conf.e2e.notice in
if ! privsep_event conf.e2e.note '{"n":42}'; then
    result event-send fail "conf.e2e.note: $(privsep_error_code)"
elif reply=$(privsep_request conf.e2e.seen '{}'); then
    [ "$(field "$reply" .notes)" = '[42]' ]
    verdict event-send $? "peer saw $(show "$reply" .notes)"
else
    result event-send fail "conf.e2e.seen: error $reply"
fi
found=no
while next_message; do
    if [ "$(field "$msg" '.type == "conf.e2e.notice" and (has("id") | not)')" = true ]; then
        [ "$(field "$msg" '.body.n == 43 and .from == "peer"')" = true ]
        verdict event-recv $? "conf.e2e.notice n=$(show "$msg" .body.n) from $(show "$msg" .from)"
        found=yes
        break
    fi
done
[ "$found" = yes ] || result event-recv fail "no conf.e2e.notice: $(privsep_error_code) ($(privsep_error_reason))"

# an error reply from the peer: privsep_request returns 1 and prints the code
reply=$(privsep_request conf.e2e.fail '{}')
status=$?
[ "$status" = 1 ] && [ "$reply" = conf.e2e.failed ]
verdict error $? "status $status, code $reply"

# a denied request
reply=$(privsep_request conf.e2e.secret '{}')
status=$?
[ "$status" = 1 ] && [ "$reply" = privsep.denied ]
verdict denied $? "status $status, code $reply"

# an invalid body: privsep_request prints only the code, so send the request as an envelope
# (an id of our own, above the client's counter) and read the whole reply for error.data
if privsep_send '{"type":"conf.e2e.upper","id":900001,"body":{"text":5}}'; then
    found=no
    while next_message; do
        if [ "$(field "$msg" .re)" = 900001 ]; then
            [ "$(field "$msg" '.error.code == "privsep.invalid" and ([.error.data.errors[]?.instanceLocation] | index("/text")) != null')" = true ]
            verdict invalid $? "code $(show "$msg" .error.code) at $(show "$msg" '[.error.data.errors[]?.instanceLocation] | join(",")')"
            found=yes
            break
        fi
    done
    [ "$found" = yes ] || result invalid fail "no reply: $(privsep_error_code) ($(privsep_error_reason))"
else
    result invalid fail "send: $(privsep_error_code)"
fi

# a message over the announced max_frame (1024, the subject's limits.max_frame) is refused
# before anything is sent, and the connection stays usable
big=$(printf '%02048d' 0)
reply=$(privsep_request privsep.ping "{\"seq\":8,\"payload\":\"$big\"}" 2>/dev/null)
status=$?
if [ "$status" = 2 ] && [ "$reply" = privsep.too_large ]; then
    reply=$(privsep_request privsep.ping '{"seq":9}')
    [ "$(field "$reply" .seq)" = 9 ]
    verdict too-large $? "refused locally: privsep.too_large ($(privsep_error_reason)); the next ping went through"
else
    result too-large fail "status $status, $reply"
fi

# descriptors: a shell cannot use SCM_RIGHTS
result fd-recv n/a "no descriptor passing from a shell"
result fd-send n/a "no descriptor passing from a shell"
exit 0
