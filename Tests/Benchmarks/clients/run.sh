#!/bin/sh
# Client benchmark (not a test): privsep.ping round trips per second through the broker with
# each client (C libprivsep, Python, Swift PrivSepHelper, POSIX sh), beside the raw C baseline
# (snprintf, write, exact reads; no JSON) in the same broker run. A coordinator helper grants
# turns so that one pinger pings at a time; turns interleave (raw, c, python, ... , raw, c ...),
# REPS turns each. Figures are the median time per round trip over the turns, with min and max.
# Goal: the C client <= 1.3x raw. Needs root (the broker) and a release build (`make bench`).
#
#   REPS=5 ROUNDS=20000 ROUNDS_SLOW=3000 ROUNDS_SH=40 sh Tests/Benchmarks/clients/run.sh
#
# Prints a table; with BENCH_OUT set, appends one JSON object per client to that file.
set -eu
cd "$(dirname "$0")/../../.."
repo=$(pwd)
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-20000}          # raw and C
ROUNDS_SLOW=${ROUNDS_SLOW:-3000} # Python and Swift
ROUNDS_SH=${ROUNDS_SH:-40}
BIN=${PRIVSEP_BIN:-$(swift build -c release --show-bin-path 2>/dev/null)}
case $BIN in /*) ;; *) BIN=$repo/$BIN ;; esac
if [ "$(id -u)" != 0 ]; then echo "clients: skipped (the broker needs root)"; exit 0; fi
[ -x "$BIN/privsep" ] || { echo "clients: $BIN/privsep not built (swift build -c release)"; exit 1; }

work=$(mktemp -d /tmp/privsep-clients-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
make -s -C clients/c >/dev/null
for prog in coordinator pinger; do
    cc -O2 -Wall -Wextra -Iclients/c/include -o "$work/$prog" "Tests/Benchmarks/clients/$prog.c" \
        clients/c/build/libprivsep.a -ljansson
done

# name, argv (JSON), rounds per turn
pingers="raw|[\"/opt/bench/pinger\", \"raw\"]|$ROUNDS
c|[\"/opt/bench/pinger\", \"lib\"]|$ROUNDS
python|[\"/usr/bin/python3\", \"-B\", \"/opt/privsep/Tests/Benchmarks/clients/pinger.py\"]|$ROUNDS_SLOW
sh|[\"/bin/sh\", \"/opt/privsep/Tests/Benchmarks/clients/pinger.sh\"]|$ROUNDS_SH"
if [ -x "$BIN/conformance-swift" ]; then
    cp "$BIN/conformance-swift" "$work/conformance-swift"
    pingers="$pingers
swift|[\"/opt/bench/conformance-swift\", \"bench\"]|$ROUNDS_SLOW"
else
    echo "clients: $BIN/conformance-swift not built: no Swift figure"
fi

coord="[\"/opt/bench/coordinator\", \"$REPS\""
entries=""
IFS_SAVE=$IFS
IFS='
'
for line in $pingers; do
    name=${line%%|*}
    rest=${line#*|}
    argv=${rest%|*}
    rounds=${rest##*|}
    coord="$coord, \"$name=$rounds\""
    entry="    \"$name\": {\"command\": $argv, \"sandbox\": {\"ro_bind\": [\"$repo:/opt/privsep\", \"$work:/opt/bench\"]},
      \"may_send\": [\"privsep.ping\", \"bench.clients.turn\", \"bench.clients.done\"], \"restart\": {\"policy\": \"never\"}}"
    entries="${entries:+$entries,
}$entry"
done
IFS=$IFS_SAVE
coord="$coord]"
# entries and argv hold / and | but never #
printf '%s\n' "$entries" >"$work/pingers"
awk -v repo="$repo" -v work="$work" -v coord="$coord" -v pf="$work/pingers" '
    BEGIN { while ((getline l < pf) > 0) pingers = pingers (pingers == "" ? "" : "\n") l }
    { gsub(/@REPO@/, repo); gsub(/@WORK@/, work); sub(/@COORD@/, coord)
      if ($0 == "@PINGERS@") print pingers; else print }' \
    Tests/Benchmarks/clients/bench.json.in >"$work/bench.json"

# The broker; stopped (SIGTERM) once the coordinator has every report, bounded by timeout.
mkfifo "$work/log.fifo"
timeout -k 5 300 "$BIN/privsep" run "$work/bench.json" --log-format json 2>"$work/log.fifo" >/dev/null &
broker=$!
while IFS= read -r line; do
    printf '%s\n' "$line" >>"$work/log"
    case $line in
    # every report is in, or a helper failed (its turn would never end): stop the broker
    *'"message":"BENCH END"'* | *'"level":"warning","message":"helper exited"'* | \
        *'"message":"sandbox setup failed'*) kill -TERM "$broker" 2>/dev/null ;;
    esac
done <"$work/log.fifo"
wait "$broker" || true
jq -r 'select(.helper == "coord") | .message' "$work/log" | grep '^BENCH ' | grep -v '^BENCH END' >"$work/results" || true
if ! grep -q '"message":"BENCH END"' "$work/log"; then
    echo "clients: the run did not finish; the broker's log:"
    tail -n 20 "$work/log"
    exit 1
fi

# Per client: the time per round trip of each turn (us); median, min, max; raw is the baseline.
awk -v reps="$REPS" -v out="${BENCH_OUT:-}" '
    { us = $4 / 1000 / $3; n[$2]++; v[$2, n[$2]] = us; if (!($2 in order)) { order[$2] = ++k; names[k] = $2 } }
    function median(name,   i, j, t, a, m) {
        m = n[name]; for (i = 1; i <= m; i++) a[i] = v[name, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        lo[name] = a[1]; hi[name] = a[m]
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
        for (i = 1; i <= k; i++) med[names[i]] = median(names[i])
        base = med["raw"]
        printf "ping round trips through the broker, %d turns each (median, min-max per round trip):\n", reps
        printf "  %-8s %12s %10s %21s %8s\n", "client", "round trips/s", "us", "min-max us", "vs raw"
        split("raw c python swift sh", want, " ")
        for (w = 1; w <= 5; w++) {
            name = want[w]; if (!(name in med)) continue
            m = med[name]
            printf "  %-8s %12.0f %10.1f %10.1f - %-8.1f %7.2fx\n", name, 1e6 / m, m, lo[name], hi[name], m / base
            if (name == "raw" || out == "") continue
            ratio = m / base
            goal = name == "c" ? "<= 1.3x" : "none (reported)"
            met = name == "c" ? (ratio <= 1.3 ? "true" : "false") : "true"
            printf "{\"figure\": \"ping round trip through the broker, %s client vs raw C\", \"placement\": \"free\", \"ours\": %.2f, \"baseline\": %.2f, \"unit\": \"us\", \"ratio\": %.3f, \"goal\": \"%s\", \"met\": %s, \"min\": %.2f, \"max\": %.2f, \"reps\": %d}\n", \
                name, m, base, ratio, goal, met, lo[name], hi[name], n[name] >> out
        }
        if ("c" in med) printf "  goal: C client <= 1.3x raw: %s (%.2fx)\n", med["c"] / base <= 1.3 ? "met" : "NOT met", med["c"] / base
    }' "$work/results"
