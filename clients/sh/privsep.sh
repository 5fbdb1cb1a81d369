# privsep.sh: the POSIX shell client of the privsep wire protocol v1.
#
# Source it from a helper script started by the broker:
#
#     . /path/to/privsep.sh || exit 1
#     trap privsep_close EXIT
#     privsep_hello >/dev/null || exit 1
#     body=$(privsep_request privsep.ping '{"seq":1}') || exit 1
#
# Needs jq, awk, dd, od, iconv, wc, mktemp; `timeout` (coreutils) bounds each wait when present.
# Frames: a 4-byte big-endian length, then that many bytes of one JSON object, on the
# socket PRIVSEP_FD (3). A shell cannot receive or send file descriptors: a frame that
# declares fds is a protocol error here; use a service such as privsep.file.read.
#
# Functions (status 0 = success):
#   privsep_open                   set up from PRIVSEP_FD/PRIVSEP_PROTOCOL (done on sourcing)
#   privsep_hello [CLIENT]         hello; prints the reply body; applies max_frame
#   privsep_send JSON              sends one envelope as is
#   privsep_recv                   prints the next incoming envelope
#   privsep_request TYPE [BODY]    prints the reply body; on an error reply prints the error
#                                  code and returns 1; other failures print the code, return 2
#   privsep_event TYPE [BODY]      sends an event
#   privsep_reply ID [BODY]        replies to request ID
#   privsep_reply_error ID CODE MESSAGE
#   privsep_log LEVEL MESSAGE      a privsep.log event (trace debug info notice warning error critical)
#   privsep_error_code, privsep_error_reason   print those of the last failure
#   privsep_error_data             prints the last error reply's error.data as compact JSON
#                                  (nothing, status 1, when it had none)
#   privsep_close                  removes the client's state directory
# A failure prints "privsep: CODE (REASON): MESSAGE" on stderr and leaves
# "CODE REASON ID" in "$PRIVSEP_STATE/error"; a fatal one ends the connection.
#
# State lives in files under PRIVSEP_STATE (made on sourcing), so the functions also
# work inside command substitutions.

PRIVSEP_SH_VERSION=0.1.0
PRIVSEP_TIMEOUT=${PRIVSEP_TIMEOUT:-30}
_privsep_pending_max=256
_privsep_tab=$(printf '\t')

# Reports an error: _privsep_error CODE REASON FATAL(0|1) ID MESSAGE...
_privsep_error() {
    _pe_code=$1 _pe_reason=$2 _pe_fatal=$3 _pe_id=$4
    shift 4
    printf 'privsep: %s (%s): %s\n' "$_pe_code" "$_pe_reason" "$*" >&2
    if [ -n "${PRIVSEP_STATE:-}" ]; then
        printf '%s %s %s\n' "$_pe_code" "$_pe_reason" "$_pe_id" >"$PRIVSEP_STATE/error"
        rm -f "$PRIVSEP_STATE/error_data"
        if [ "$_pe_fatal" = 1 ]; then
            printf '%s %s %s\n' "$_pe_code" "$_pe_reason" "$*" >"$PRIVSEP_STATE/failed"
        fi
    fi
    return 1
}

privsep_open() {
    case ${PRIVSEP_PROTOCOL:-1} in
    1) ;;
    *) _privsep_error privsep.protocol environment 1 - "PRIVSEP_PROTOCOL=$PRIVSEP_PROTOCOL, this client speaks 1"
       return 1 ;;
    esac
    case ${PRIVSEP_FD:-} in
    '' | *[!0-9]*)
        _privsep_error privsep.invalid environment 1 - "PRIVSEP_FD='${PRIVSEP_FD:-}' is not a descriptor number"
        return 1 ;;
    esac
    for _po_tool in jq awk dd od iconv wc mktemp; do
        command -v "$_po_tool" >/dev/null 2>&1 || {
            _privsep_error privsep.internal environment 1 - "$_po_tool is not installed"
            return 1
        }
    done
    if [ -n "${PRIVSEP_STATE:-}" ] && [ -d "$PRIVSEP_STATE" ]; then
        rm -rf "$PRIVSEP_STATE"
    fi
    PRIVSEP_STATE=$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/privsep-sh.XXXXXX") || return 1
    echo 1 >"$PRIVSEP_STATE/next_id"
    echo 1048576 >"$PRIVSEP_STATE/max_frame"
    : >"$PRIVSEP_STATE/queue"
    # GNU dd gathers a whole block with iflag=fullblock; else one byte per read.
    if dd if=/dev/null of=/dev/null iflag=fullblock 2>/dev/null; then
        _privsep_fullblock=1
    else
        _privsep_fullblock=0
    fi
    if command -v timeout >/dev/null 2>&1; then _privsep_timeout=1; else _privsep_timeout=; fi
    _privsep_peer_helper=false
    return 0
}

# The code and the reason of the last failure ("" if none).
privsep_error_code() {
    [ -s "${PRIVSEP_STATE:-/nonexistent}/error" ] && cut -d' ' -f1 "$PRIVSEP_STATE/error"
}

privsep_error_reason() {
    [ -s "${PRIVSEP_STATE:-/nonexistent}/error" ] && cut -d' ' -f2 "$PRIVSEP_STATE/error"
}

# The `data` of the last failure's error reply, compact JSON on one line ("" if it had none).
privsep_error_data() {
    [ -s "${PRIVSEP_STATE:-/nonexistent}/error_data" ] && cat "$PRIVSEP_STATE/error_data"
}

privsep_close() {
    if [ -n "${PRIVSEP_STATE:-}" ] && [ -d "$PRIVSEP_STATE" ]; then
        rm -rf "$PRIVSEP_STATE"
    fi
    PRIVSEP_STATE=
}

# Fails with the recorded error once the connection has failed.
_privsep_usable() {
    if [ -z "${PRIVSEP_STATE:-}" ] || [ ! -d "$PRIVSEP_STATE" ]; then
        printf 'privsep: privsep.internal (argument): not open (source privsep.sh with PRIVSEP_FD set)\n' >&2
        return 1
    fi
    if [ -s "$PRIVSEP_STATE/failed" ]; then
        read -r _pu_code _pu_reason _pu_msg <"$PRIVSEP_STATE/failed"
        printf 'privsep: %s (%s): %s\n' "$_pu_code" "$_pu_reason" "$_pu_msg" >&2
        printf '%s %s -\n' "$_pu_code" "$_pu_reason" >"$PRIVSEP_STATE/error"
        rm -f "$PRIVSEP_STATE/error_data"
        return 1
    fi
    return 0
}

# --- sending ------------------------------------------------------------------------

# Checks and compacts an envelope a helper sends; prints it.
# shellcheck disable=SC2016 # a jq program
_privsep_outgoing='
def typeok: type == "string" and test("\\A[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+\\z");
def idok: type == "number" and . == floor and . >= 1 and . <= 9007199254740991;
if type != "object" then "envelope is not an object"
elif has("from") then "member from is set by the broker only"
elif has("fds") then "a shell helper cannot send fds"
elif (keys - ["type","id","re","body","error","more"]) != [] then "unknown member \((keys - ["type","id","re","body","error","more"])[0])"
elif has("type") and (.type | typeok | not) then "type must match ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$"
elif has("id") and (.id | idok | not) then "id must be an integer in 1..2^53-1"
elif has("re") and (.re | idok | not) then "re must be an integer in 1..2^53-1"
elif has("body") and (.body | type != "object") then "body must be an object"
elif has("error") and ((.error | type != "object") or (.error.code | typeok | not) or (.error.message | type != "string") or ((.error | keys - ["code","message","data"]) != [])) then "error must be {code, message, data?} with a dotted code"
elif has("more") and .more != true then "more must be true when present"
elif has("re") and (has("type") or has("id")) then "a reply has no type or id"
elif has("re") and has("error") and (has("body") or has("more")) then "an error reply has no body or more"
elif (has("re") | not) and (has("type") | not) then "neither type nor re"
elif (has("re") | not) and (has("error") or has("more")) then "error and more are for replies"
else "ok\t\(tojson)" end'

privsep_send() {
    _privsep_usable || return 1
    _ps_out=$(printf '%s' "$1" | jq -r "$_privsep_outgoing" 2>/dev/null) || {
        _privsep_error privsep.invalid argument 0 - "send: not one JSON value"
        return 1
    }
    case $_ps_out in
    ok"$_privsep_tab"*) _ps_json=${_ps_out#ok"$_privsep_tab"} ;;
    *) _privsep_error privsep.invalid argument 0 - "send: $_ps_out"; return 1 ;;
    esac
    _ps_len=$(printf '%s' "$_ps_json" | LC_ALL=C wc -c | tr -d ' ')
    read -r _ps_max <"$PRIVSEP_STATE/max_frame"
    if [ "$_ps_len" -gt "$_ps_max" ]; then
        _privsep_error privsep.too_large unsendable 0 - "send: frame of $_ps_len bytes over max_frame $_ps_max"
        return 1
    fi
    _ps_prefix=$(printf '\\%03o\\%03o\\%03o\\%03o' $((_ps_len >> 24 & 255)) \
        $((_ps_len >> 16 & 255)) $((_ps_len >> 8 & 255)) $((_ps_len & 255)))
    # A subshell: a closed socket kills it with SIGPIPE, not the helper.
    # shellcheck disable=SC2059 # the prefix is octal escapes made above
    if ! (exec 2>/dev/null; printf "$_ps_prefix"; printf '%s' "$_ps_json") >&"$PRIVSEP_FD"; then
        _privsep_error privsep.unavailable connection_closed 1 - "send: the broker closed the connection"
        return 1
    fi
    return 0
}

# Prints BODY, or {} when it is empty.
_privsep_body() {
    if [ -z "${1:-}" ]; then
        printf '{}'
    else
        printf '%s' "$1"
    fi
}

privsep_event() {
    _pe_env=$(jq -cn --arg t "$1" --argjson b "$(_privsep_body "${2:-}")" '{type: $t, body: $b}' 2>/dev/null) || {
        _privsep_error privsep.invalid argument 0 - "event: body is not JSON"
        return 1
    }
    privsep_send "$_pe_env"
}

privsep_reply() {
    _pr_env=$(jq -cn --argjson re "$1" --argjson b "$(_privsep_body "${2:-}")" '{re: $re, body: $b}' 2>/dev/null) || {
        _privsep_error privsep.invalid argument 0 - "reply: id or body is not JSON"
        return 1
    }
    privsep_send "$_pr_env"
}

privsep_reply_error() {
    _pr_env=$(jq -cn --argjson re "$1" --arg c "$2" --arg m "$3" '{re: $re, error: {code: $c, message: $m}}' 2>/dev/null) || {
        _privsep_error privsep.invalid argument 0 - "reply_error: id is not a number"
        return 1
    }
    privsep_send "$_pr_env"
}

privsep_log() {
    _pl_body=$(jq -cn --arg l "$1" --arg m "$2" '{level: $l, message: $m}') || return 1
    privsep_event privsep.log "$_pl_body"
}

# --- receiving ----------------------------------------------------------------------

# Reads exactly $1 bytes (or up to the end of the stream) from the socket into $2.
_privsep_read_exact() {
    if [ "$_privsep_fullblock" = 1 ]; then
        set -- "$2" bs="$1" count=1 iflag=fullblock
    else
        set -- "$2" bs=1 count="$1"
    fi
    _pr_file=$1
    shift
    if [ -n "$_privsep_timeout" ]; then
        timeout "$PRIVSEP_TIMEOUT" dd "$@" of="$_pr_file" 2>/dev/null <&"$PRIVSEP_FD"
    else
        dd "$@" of="$_pr_file" 2>/dev/null <&"$PRIVSEP_FD"
    fi
    _pr_status=$?
    set -- "$_pr_file"
    _pr_got=$(LC_ALL=C wc -c <"$1" | tr -d ' ')
    return $_pr_status
}

# Validates an envelope received from the broker. Prints one line:
#   ok TAB kind TAB number TAB errorcode TAB envelope   (number: re, id or 0)
#   fatal TAB reason | refused TAB reason TAB reply_to
# shellcheck disable=SC2016 # a jq program
_privsep_incoming='
def typeok: type == "string" and test("\\A[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+\\z");
def isint: type == "number" and . == floor;
def idok: isint and . >= 1 and . <= 9007199254740991;
def depth: if type == "object" or type == "array" then 1 + ([.[] | depth] | max // 0) else 0 end;
def refuse($r): "refused\t\($r)\t\(if ((has("re") | not) and (.id | idok)) then .id else "-" end)";
if length != 1 then "fatal\tinvalid_json"
else .[0] |
  if type != "object" then "fatal\tnot_object"
  elif depth > 64 then "fatal\tinvalid_json"
  elif $peer_helper and has("from") then "fatal\tfrom_forbidden"
  elif has("fds") and ((.fds | isint | not) or .fds < 1 or .fds > 8) then "fatal\tbad_fds"
  elif has("fds") then "fatal\tfds_missing"
  elif (keys - ["type","id","re","body","error","more","fds","from"]) != [] then refuse("unknown_member")
  elif has("type") and (.type | typeok | not) then refuse("bad_type")
  elif has("id") and (.id | idok | not) then refuse("bad_id")
  elif has("re") and (.re | idok | not) then refuse("bad_re")
  elif has("body") and (.body | type != "object") then refuse("bad_body")
  elif has("error") and ((.error | type != "object") or ((.error | keys - ["code","message","data"]) != []) or (.error.code | typeok | not) or (.error.message | type != "string")) then refuse("bad_error")
  elif has("more") and .more != true then refuse("bad_more")
  elif has("from") and ((.from | type != "string") or .from == "") then refuse("bad_from")
  elif has("re") and (has("type") or has("id")) then refuse("bad_kind")
  elif has("re") and has("error") and has("body") then refuse("bad_kind")
  elif has("re") and has("error") and has("more") then refuse("bad_more")
  elif has("re") then "ok\treply\t\(.re)\t\(.error.code // "-")\t\(if has("error") or has("body") then . else . + {body: {}} end | tojson)"
  elif has("type") | not then refuse("bad_kind")
  elif has("error") then refuse("bad_kind")
  elif has("more") then refuse("bad_more")
  elif has("id") then "ok\trequest\t\(.id)\t-\t\(if has("body") then . else . + {body: {}} end | tojson)"
  else "ok\tevent\t0\t-\t\(if has("body") then . else . + {body: {}} end | tojson)" end
end'

# jq 1.6 lets through duplicate keys (the last wins), NaN and numbers outside the RFC 8259
# grammar (01): this awk program rejects them first. Keys are compared after unescaping, so
# "k" and "\u006b" are the same key. Exit status 1 on the first problem.
# shellcheck disable=SC2016 # an awk program
_privsep_strict='
function bad(why) { print why; failed = 1; exit 1 }
function hex4(h,    v, k, c) {
    if (h !~ /^[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f]$/) bad("bad \\u escape")
    v = 0
    for (k = 1; k <= 4; k++) {
        c = index("0123456789abcdef", tolower(substr(h, k, 1))) - 1
        v = v * 16 + c
    }
    return v
}
BEGIN {
    for (k = 1; k < 256; k++) ord[sprintf("%c", k)] = k
    esc["b"] = 8; esc["f"] = 12; esc["n"] = 10; esc["r"] = 13; esc["t"] = 9
    esc["\""] = 34; esc["\\"] = 92; esc["/"] = 47
}
{ s = s $0 "\n" }
END {
    if (failed) exit 1
    n = length(s); i = 1; depth = 0; objects = 0; prev = ""
    while (i <= n) {
        c = substr(s, i, 1)
        if (c == " " || c == "\t" || c == "\n" || c == "\r") { i++; continue }
        if (c == "{" || c == "[") {
            depth++; kind[depth] = c; obj[depth] = ++objects; prev = c; i++; continue
        }
        if (c == "}" || c == "]") { depth--; prev = "v"; i++; continue }
        if (c == "," || c == ":") { prev = c; i++; continue }
        if (c == "\"") {
            iskey = depth > 0 && kind[depth] == "{" && (prev == "{" || prev == ",")
            key = ""; j = i + 1
            while (j <= n) {
                d = substr(s, j, 1)
                if (d == "\"") break
                if (d == "\\") {
                    e = substr(s, j + 1, 1)
                    if (e == "u") {
                        cp = hex4(substr(s, j + 2, 4)); j += 6
                        if (cp >= 55296 && cp <= 56319 && substr(s, j, 2) == "\\u") {
                            lo = hex4(substr(s, j + 2, 4))
                            if (lo >= 56320 && lo <= 57343) { cp = 65536 + (cp - 55296) * 1024 + (lo - 56320); j += 6 }
                        }
                    } else if (e in esc) {
                        cp = esc[e]; j += 2
                    } else bad("bad escape")
                    if (iskey) key = key "," cp
                    continue
                }
                if (iskey) {
                    b = ord[d]
                    if (b < 128) { cp = b; len = 1 }
                    else if (b >= 240) { cp = b - 240; len = 4 }
                    else if (b >= 224) { cp = b - 224; len = 3 }
                    else { cp = b - 192; len = 2 }
                    for (k = 1; k < len; k++) cp = cp * 64 + ord[substr(s, j + k, 1)] - 128
                    key = key "," cp
                    j += len
                } else j++
            }
            if (j > n) bad("unterminated string")
            if (iskey) {
                if ((obj[depth], key) in seen) bad("duplicate key")
                seen[obj[depth], key] = 1
            }
            prev = "v"; i = j + 1; continue
        }
        tok = ""
        while (i <= n && substr(s, i, 1) ~ /[A-Za-z0-9.+-]/) { tok = tok substr(s, i, 1); i++ }
        if (tok == "") bad("unexpected byte")
        if (tok != "true" && tok != "false" && tok != "null" &&
            tok !~ /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$/) bad("not a JSON token: " tok)
        prev = "v"
    }
}
'

# Reads and checks one frame from the socket. Sets _privsep_line to the "ok" line.
# Status 0 ok, 1 fatal (the connection is finished), 2 refused (the stream goes on).
_privsep_read_frame() {
    _privsep_usable || return 1
    _rf_dir=$PRIVSEP_STATE
    _privsep_read_exact 4 "$_rf_dir/prefix"
    _rf_status=$?
    if [ "$_pr_got" -eq 0 ]; then
        if [ "$_rf_status" -eq 124 ]; then
            _privsep_error privsep.timeout timeout 0 - "receive: no message in ${PRIVSEP_TIMEOUT}s"
            return 2
        fi
        _privsep_error privsep.unavailable connection_closed 1 - "receive: the broker closed the connection"
        return 1
    fi
    if [ "$_pr_got" -lt 4 ]; then
        _privsep_error privsep.protocol truncated_frame 1 - "receive: stream ended inside a length prefix"
        return 1
    fi
    # shellcheck disable=SC2046 # four numbers, split on purpose
    set -- $(od -An -tu1 "$_rf_dir/prefix")
    _rf_len=$(($1 * 16777216 + $2 * 65536 + $3 * 256 + $4))
    read -r _rf_max <"$_rf_dir/max_frame"
    # Checked before a single body byte is read.
    if [ "$_rf_len" -lt 2 ]; then
        _privsep_error privsep.protocol frame_too_short 1 - "receive: length $_rf_len below 2"
        return 1
    fi
    if [ "$_rf_len" -gt "$_rf_max" ]; then
        _privsep_error privsep.too_large frame_too_large 1 - "receive: length $_rf_len above max_frame $_rf_max"
        return 1
    fi
    _privsep_read_exact "$_rf_len" "$_rf_dir/frame"
    if [ "$_pr_got" -lt "$_rf_len" ]; then
        _privsep_error privsep.protocol truncated_frame 1 - "receive: stream ended after $_pr_got of $_rf_len body bytes"
        return 1
    fi
    # jq would accept what I-JSON forbids: check UTF-8 and the byte-order mark first.
    if ! iconv -f UTF-8 -t UTF-8 <"$_rf_dir/frame" >/dev/null 2>&1; then
        _privsep_error privsep.protocol invalid_json 1 - "receive: frame is not valid UTF-8"
        return 1
    fi
    case $(od -An -tx1 -N3 "$_rf_dir/frame" | tr -d ' ') in
    efbbbf) _privsep_error privsep.protocol invalid_json 1 - "receive: byte-order mark"; return 1 ;;
    esac
    if ! LC_ALL=C awk "$_privsep_strict" "$_rf_dir/frame" >/dev/null 2>&1; then
        _privsep_error privsep.protocol invalid_json 1 - "receive: frame is not I-JSON (duplicate key, NaN or a malformed number)"
        return 1
    fi
    _privsep_line=$(jq -r -s --argjson peer_helper "$_privsep_peer_helper" "$_privsep_incoming" <"$_rf_dir/frame" 2>/dev/null) ||
        _privsep_line="fatal${_privsep_tab}invalid_json"
    case $_privsep_line in
    ok"$_privsep_tab"*) return 0 ;;
    fatal"$_privsep_tab"*)
        _rf_reason=${_privsep_line#fatal"$_privsep_tab"}
        _privsep_error privsep.protocol "$_rf_reason" 1 - "receive: frame rejected"
        return 1 ;;
    *)
        _rf_rest=${_privsep_line#refused"$_privsep_tab"}
        _privsep_error privsep.invalid "${_rf_rest%%"$_privsep_tab"*}" 0 "${_rf_rest#*"$_privsep_tab"}" "receive: message refused"
        return 2 ;;
    esac
}

# Prints the envelope part of an "ok" line.
_privsep_envelope_of() {
    printf '%s\n' "$1" | cut -f5-
}

# Prints the next incoming envelope (those kept while a request waited come first).
# Status 0, 1 fatal, 2 refused or timed out (try again).
privsep_recv() {
    _privsep_usable || return 1
    if [ -s "$PRIVSEP_STATE/queue" ]; then
        _rv_line=$(head -n 1 "$PRIVSEP_STATE/queue")
        sed 1d "$PRIVSEP_STATE/queue" >"$PRIVSEP_STATE/queue.new" &&
            mv "$PRIVSEP_STATE/queue.new" "$PRIVSEP_STATE/queue"
        _privsep_envelope_of "$_rv_line"
        return 0
    fi
    _privsep_read_frame || return $?
    _privsep_envelope_of "$_privsep_line"
}

# Sends a request and waits for its reply, keeping other messages for privsep_recv.
privsep_request() {
    _privsep_usable || { echo privsep.internal; return 2; }
    read -r _rq_id <"$PRIVSEP_STATE/next_id"
    echo $((_rq_id + 1)) >"$PRIVSEP_STATE/next_id"
    _rq_env=$(jq -cn --arg t "$1" --argjson id "$_rq_id" --argjson b "$(_privsep_body "${2:-}")" \
        '{type: $t, id: $id, body: $b}' 2>/dev/null) || {
        _privsep_error privsep.invalid argument 0 - "request: body is not JSON"
        echo privsep.invalid
        return 2
    }
    if ! privsep_send "$_rq_env"; then
        cut -d' ' -f1 "$PRIVSEP_STATE/error"
        return 2
    fi
    while :; do
        _privsep_read_frame
        case $? in
        0) ;;
        2)
            # a refused message is not this request's; a timeout ends the wait
            case $(cut -d' ' -f2 "$PRIVSEP_STATE/error") in
            timeout) echo privsep.timeout; return 2 ;;
            esac
            continue ;;
        *) cut -d' ' -f1 "$PRIVSEP_STATE/error"; return 2 ;;
        esac
        _rq_rest=${_privsep_line#ok"$_privsep_tab"}
        _rq_kind=${_rq_rest%%"$_privsep_tab"*}
        _rq_rest=${_rq_rest#*"$_privsep_tab"}
        _rq_num=${_rq_rest%%"$_privsep_tab"*}
        _rq_rest=${_rq_rest#*"$_privsep_tab"}
        _rq_code=${_rq_rest%%"$_privsep_tab"*}
        _rq_envelope=${_rq_rest#*"$_privsep_tab"}
        if [ "$_rq_kind" = reply ] && [ "$_rq_num" = "$_rq_id" ]; then
            break
        fi
        if [ "$(wc -l <"$PRIVSEP_STATE/queue")" -ge "$_privsep_pending_max" ]; then
            _privsep_error privsep.internal send_queue_full 0 - "request: $_privsep_pending_max messages arrived while waiting; receive them first"
            echo privsep.internal
            return 2
        fi
        printf '%s\n' "$_privsep_line" >>"$PRIVSEP_STATE/queue"
    done
    if [ "$_rq_code" != - ]; then
        printf '%s\n' "$_rq_envelope" | jq -r '"privsep: error reply: \(.error.code): \(.error.message)"' >&2
        printf '%s\n' "$_rq_code" >"$PRIVSEP_STATE/error"
        printf '%s\n' "$_rq_envelope" | jq -c '.error | if has("data") then .data else empty end' >"$PRIVSEP_STATE/error_data"
        echo "$_rq_code"
        return 1
    fi
    printf '%s\n' "$_rq_envelope" | jq -c '.body'
}

privsep_hello() {
    _ph_body=$(jq -cn --arg c "${1:-privsep.sh/$PRIVSEP_SH_VERSION}" '{protocol: 1, client: $c}')
    _ph_reply=$(privsep_request privsep.hello "$_ph_body") || {
        _privsep_error privsep.protocol error_reply 1 - "hello refused: $_ph_reply"
        return 1
    }
    _ph_max=$(printf '%s' "$_ph_reply" | jq -r '.max_frame // 1048576')
    case $_ph_max in
    '' | *[!0-9]*) _privsep_error privsep.protocol bad_hello 1 - "hello: max_frame is not an integer"; return 1 ;;
    esac
    if [ "$_ph_max" -lt 2 ] || [ "$_ph_max" -gt 16777216 ]; then
        _privsep_error privsep.protocol bad_hello 1 - "hello: max_frame $_ph_max outside 2..16777216"
        return 1
    fi
    echo "$_ph_max" >"$PRIVSEP_STATE/max_frame"
    printf '%s\n' "$_ph_reply"
}

# Set up on sourcing when started by the broker; tests may call privsep_open again.
if [ -n "${PRIVSEP_FD:-}" ]; then
    privsep_open
fi
