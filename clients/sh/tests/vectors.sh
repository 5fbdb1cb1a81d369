#!/bin/sh
# Conformance: the shell client's decoder (privsep_recv) on every case of
# Tests/Conformance/vectors/*.json, each case's bytes read through fd 3.
# Cases that attach fds are n/a: a shell cannot receive descriptors.
# Usage: vectors.sh [VECTOR-DIR]; prints one line per case and "N passed, N failed".
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/../../../Tests/Conformance/vectors}
label=${PRIVSEP_SH_LABEL:-sh_vectors}
# shellcheck disable=SC1091 # sourced by a computed path
. "$here/../privsep.sh" || exit 1

work=$(mktemp -d "${TMPDIR:-/tmp}/privsep-vectors.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

# Writes the bytes of a hex string to a file.
unhex() {
    printf '%s' "$1" | fold -w 2 | awk 'BEGIN { for (i = 0; i < 256; i++) hex[sprintf("%02x", i)] = sprintf("\\%03o", i) }
        { printf "%s", hex[$0] }' >"$work/fmt"
    # shellcheck disable=SC2059 # the format is octal escapes made above
    printf "$(cat "$work/fmt")" >"$2"
}

# Runs one case: prints {"messages": [...], "error": ...} as the shell client saw it.
run_case() {
    (
        exec 3<"$1"
        PRIVSEP_FD=3 && export PRIVSEP_FD
        privsep_open 2>/dev/null || exit 1
        echo "$2" >"$PRIVSEP_STATE/max_frame"
        _privsep_peer_helper=$3
        : >"$work/out"
        error=null
        while :; do
            env=$(privsep_recv 2>/dev/null)
            case $? in
            0) printf '{"envelope":%s,"fds":0}\n' "$env" >>"$work/out" ;;
            2) read -r code reason id <"$PRIVSEP_STATE/error"
               jq -cn --arg c "$code" --arg r "$reason" --arg i "$id" \
                   '{refused: {code: $c, reason: $r, reply_to: (if $i == "-" then null else ($i | tonumber) end)}}' >>"$work/out" ;;
            *) read -r code reason id <"$PRIVSEP_STATE/error"
               if [ "$reason" != connection_closed ]; then
                   error=$(jq -cn --arg c "$code" --arg r "$reason" '{code: $c, reason: $r}')
               fi
               break ;;
            esac
        done
        privsep_close
        jq -cs --argjson e "$error" '{messages: ., error: $e}' "$work/out"
    )
}

status=0
for file in "$dir"/*.json; do
    [ -e "$file" ] || { echo "$label: no vectors in $dir"; exit 1; }
    # One line per case: name, whether it attaches fds, input, max_frame, peer is a helper.
    jq -r '.cases[] | [.name, (has("fds") | tostring), (if .input == "" then "-" else .input end),
        ((.max_frame // 1048576) | tostring),
        (((.role // "helper") == "helper") | tostring)] | join(" ")' "$file" >"$work/list"
    : >"$work/got"
    while read -r _ fds input max helper; do
        if [ "$fds" = true ]; then
            echo '"n/a"' >>"$work/got"
            continue
        fi
        [ "$input" = - ] && input=
        unhex "$input" "$work/bin"
        run_case "$work/bin" "$max" "$helper" >>"$work/got" || echo '"no result"' >>"$work/got"
    done <"$work/list"
    jq -r --slurpfile got "$work/got" --arg l "$label" '.area as $a | [.cases, $got] | transpose[] |
        if .[1] == "n/a" then "n/a  \($l): \($a)/\(.[0].name): fd passing"
        elif .[0].expect == .[1] then "ok   \($l): \($a)/\(.[0].name)"
        else "FAIL \($l): \($a)/\(.[0].name): want \(.[0].expect | tojson) got \(.[1] | tojson)" end' "$file"
done >"$work/report"
cat "$work/report"
passed=$(grep -c '^ok ' "$work/report")
failed=$(grep -c '^FAIL ' "$work/report")
na=$(grep -c '^n/a ' "$work/report")
echo "$label: $passed passed, $failed failed, $na n/a"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
