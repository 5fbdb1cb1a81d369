#!/bin/sh
# End-to-end conformance: the same scenario helper (the "subject"), written with each client,
# runs under the real broker (`privsep run`, as root, sandboxed helpers) against the C peer.
# Each client gets a broker of its own; the runs go in parallel. The subject prints
# "RESULT <scenario> pass|fail|n/a <detail>" lines, which the broker logs (--log-format json)
# tagged with the helper's name; this script reads them back from the broker's log and prints
# the table client x scenario, then "conformance: N passed, M failed, K n/a".
# Exit status 0 when every cell that should pass passes.
#
#   sh Tests/Conformance/e2e/run.sh [CLIENT...]     (clients: c sh sh-bash python swift)
#
# PRIVSEP_BIN names the directory of privsep, privsep-sandbox and conformance-swift
# (default .build/debug, what `make test` builds). Logs go to Tests/out/conformance-e2e/.
set -u
cd "$(dirname "$0")/../../.." || exit 2
repo=$(pwd)
bin=${PRIVSEP_BIN:-.build/debug}
case $bin in /*) ;; *) bin=$repo/$bin ;; esac
out=Tests/out/conformance-e2e
# How long one client's broker may run before it is stopped (the runs are parallel).
WATCHDOG=${WATCHDOG:-45}
SCENARIOS="hello ping request serve event-send event-recv error denied invalid too-large fd-recv fd-send"
CLIENTS=${*:-c sh sh-bash python swift}

[ "$(id -u)" = 0 ] || { echo "conformance: the broker sets uids and namespaces: run as root"; exit 1; }
for tool in jq cc mkfifo timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "conformance: $tool is not installed"; exit 1; }
done
for file in privsep privsep-sandbox; do
    [ -x "$bin/$file" ] || { echo "conformance: $bin/$file is not built (swift build)"; exit 1; }
done

rm -rf "$out"
mkdir -p "$out"
work=$(mktemp -d /tmp/privsep-conformance.XXXXXX) || exit 2
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
chmod 755 "$work"

# The C helpers, against the C client library; the Swift subject as built by `swift build`.
make -s -C clients/c >/dev/null || { echo "conformance: clients/c does not build"; exit 1; }
for prog in peer subject; do
    cc -O2 -Wall -Wextra -Werror -Iclients/c/include -o "$work/$prog" "Tests/Conformance/e2e/c/$prog.c" \
        clients/c/build/libprivsep.a -ljansson || { echo "conformance: $prog.c does not build"; exit 1; }
done
[ -x "$bin/conformance-swift" ] && cp "$bin/conformance-swift" "$work/conformance-swift"

# The subject's argv (JSON) for a client, as the sandbox sees it (/opt/privsep: the repository,
# /opt/conf: $work), or nothing when that client's subject is not built.
subject_command() {
    e2e=/opt/privsep/Tests/Conformance/e2e
    case $1 in
    c) echo '["/opt/conf/subject"]' ;;
    sh) echo "[\"/bin/dash\", \"$e2e/sh/subject.sh\"]" ;;
    sh-bash) echo "[\"/bin/bash\", \"$e2e/sh/subject.sh\"]" ;;
    python) echo "[\"/usr/bin/python3\", \"-B\", \"$e2e/python/subject.py\"]" ;;
    swift) [ -x "$work/conformance-swift" ] && echo '["/opt/conf/conformance-swift"]' ;;
    esac
}

# Cells expected to be n/a: a shell cannot pass descriptors.
expected_na() {
    case $1:$2 in
    sh:fd-* | sh-bash:fd-*) return 0 ;;
    esac
    return 1
}

# run_client NAME INDEX: one broker with the peer and this client's subject. The broker's
# log goes through a FIFO so that the subject's exit is seen as it happens; then the broker
# is stopped as an operator would (SIGTERM) and must stop cleanly. `timeout` bounds it all.
run_client() {
    name=$1
    command=$(subject_command "$name")
    if [ -z "$command" ]; then
        echo "not built" >"$work/$name.status"
        return
    fi
    first=$((62000 + 16 * $2))
    sed -e "s|@REPO@|$repo|g" -e "s|@WORK@|$work|g" -e "s|@SUBJECT@|$command|" \
        -e "s|@UIDS@|[$first, $((first + 15))]|" Tests/Conformance/e2e/conformance.json.in >"$work/$name.json"
    mkfifo "$work/$name.fifo"
    timeout -k 5 "$WATCHDOG" "$bin/privsep" run "$work/$name.json" --log-format json \
        2>"$work/$name.fifo" >/dev/null &
    broker=$!
    : >"$out/$name.log"
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$out/$name.log"
        case $line in
        *'"message":"helper exited","helper":"subject"'* | \
            *'"message":"sandbox setup failed'*'"helper":"subject"'*)
            kill -TERM "$broker" 2>/dev/null ;;
        esac
    done <"$work/$name.fifo"
    status=0
    wait "$broker" || status=$?
    echo "$status" >"$work/$name.status"
}

index=0
pids=""
for client in $CLIENTS; do
    run_client "$client" "$index" &
    pids="$pids $!"
    index=$((index + 1))
done
for pid in $pids; do wait "$pid"; done

# The table.
passed=0 failed=0 na=0
failures=""
printf '%-8s' client
for s in $SCENARIOS exit; do printf ' %-10s' "$s"; done
echo
for client in $CLIENTS; do
    printf '%-8s' "$client"
    log=$out/$client.log
    # (lines read after the process ended carry no "stream": match the message itself)
    jq -r 'select(.helper == "subject") | .message' "$log" 2>/dev/null |
        grep '^RESULT ' >"$work/$client.results"
    for s in $SCENARIOS exit; do
        if [ "$s" = exit ]; then
            # The subject exited 0; the broker, sent SIGTERM, stopped cleanly (status 0) and
            # answered every request it accepted (the promise: requests == final_replies).
            bstatus=$(cat "$work/$client.status" 2>/dev/null)
            sstatus=$(jq -r 'select(.helper == "subject" and .message == "helper exited") | .status' "$log" 2>/dev/null | head -n 1)
            promise=$(jq -r 'select(.message == "broker stopped") | "\(.requests) requests, \(.final_replies) final replies"' "$log" 2>/dev/null)
            balanced=$(jq -r 'select(.message == "broker stopped") | .requests == .final_replies' "$log" 2>/dev/null)
            if [ "$bstatus" = 0 ] && [ "$sstatus" = "exited with status 0" ] && [ "$balanced" = true ]; then
                verdict=pass
            else
                verdict=fail
                detail="subject ${sstatus:-did not exit}; broker exit status ${bstatus:-?}, ${promise:-no 'broker stopped' line}"
            fi
        else
            line=$(grep "^RESULT $s " "$work/$client.results" | head -n 1)
            verdict=$(printf '%s\n' "$line" | cut -d' ' -f3)
            detail=$(printf '%s\n' "$line" | cut -d' ' -f4-)
            if [ -z "$line" ] && [ "$(cat "$work/$client.status")" = "not built" ]; then
                verdict=fail detail="the subject is not built"
            elif [ -z "$line" ]; then
                verdict=fail detail="no result (see $log)"
            fi
        fi
        if expected_na "$client" "$s" && [ "$verdict" = n/a ]; then
            cell=n/a; na=$((na + 1))
        elif [ "$verdict" = pass ]; then
            cell=pass; passed=$((passed + 1))
        else
            cell=FAIL; failed=$((failed + 1))
            failures="$failures
FAIL $client $s: $detail"
        fi
        printf ' %-10s' "$cell"
    done
    echo
done
if [ -n "$failures" ]; then
    printf '%s\n' "$failures" | sed 1d
    for client in $CLIENTS; do
        # what the helpers wrote on stderr, and what the broker says went wrong with them
        jq -r --arg c "$client" 'select(.helper == "subject" or .helper == "peer")
            | select(.stream == "stderr" or (.level != "info" and .level != "notice"
                     and (.message | startswith("refused:") | not)))
            | "  \($c) \(.helper): \(.message)"' "$out/$client.log" 2>/dev/null | tail -n 5
    done
fi
echo "conformance: $passed passed, $failed failed, $na n/a"
[ "$failed" -eq 0 ]
