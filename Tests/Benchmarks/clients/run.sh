#!/bin/sh
# Client benchmark (not a test): privsep.ping round trips per second through the broker with
# each client (C libprivsep, Python, Swift PrivSepHelper, POSIX sh), beside the raw C baseline
# (snprintf, write, exact reads; no JSON) in the same broker run. A coordinator helper grants
# turns so that one pinger pings at a time; turns interleave (raw, c, python, ... , raw, c ...),
# REPS turns each. Figures are the median time per round trip over the turns, with min and max;
# the ratio is the median of per-turn ratios to raw. Goal: the C client <= 1.3x raw.
# Needs root (the broker) and a release build (`make bench`).
#
#   [PLACEMENT="free same-cpu"] [REPS=5 ROUNDS=20000 ROUNDS_SLOW=3000 ROUNDS_SH=10] sh Tests/Benchmarks/clients/run.sh
#
# Prints a table; with BENCH_OUT set, appends one JSON object per client to that file.
set -eu
cd "$(dirname "$0")/../../.."
repo=$(pwd)
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-20000}          # raw and C
ROUNDS_SLOW=${ROUNDS_SLOW:-3000} # Python and Swift
ROUNDS_SH=${ROUNDS_SH:-10}
# free: the scheduler places broker and helpers; same-cpu: all of them on CPU 0 (taskset,
# inherited by the helpers). One run per placement; `make bench` passes one (BENCH_PLACEMENT).
PLACEMENT=${PLACEMENT:-${BENCH_PLACEMENT:-free same-cpu}}
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
      \"may_send\": [\"privsep.ping\", \"bench.clients.turn\", \"bench.clients.done\"], \"restart\": {\"policy\": \"never\"},
      \"limits\": {\"max_rate\": 0}}"
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

# measure PLACEMENT: one broker run with every pinger; prints the table, appends to BENCH_OUT.
measure() {
    placement=$1
    # The broker; stopped (SIGTERM) once the coordinator has every report, bounded by timeout.
    rm -f "$work/log" "$work/log.fifo"
    mkfifo "$work/log.fifo"
    case $placement in
    free) pin="" ;;
    same-cpu) pin="taskset -c 0" ;;
    *) echo "clients: PLACEMENT is free or same-cpu"; exit 1 ;;
    esac
    # shellcheck disable=SC2086 # $pin is empty or a command and its arguments
    $pin timeout -k 5 300 "$BIN/privsep" run "$work/bench.json" --log-format json 2>"$work/log.fifo" >/dev/null &
    broker=$!
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$work/log"
        case $line in
        # every report is in, or a helper failed (its turn would never end): stop the broker
        *'"message":"BENCH END"'* | *'"level":"warning","message":"helper exited"'* | \
            *'"message":"sandbox setup failed'*) kill -TERM "$broker" 2>/dev/null || true ;;
        esac
    done <"$work/log.fifo"
    wait "$broker" || true
    jq -r 'select(.helper == "coord") | .message' "$work/log" | grep '^BENCH ' | grep -v '^BENCH END' >"$work/results" || true
    if ! grep -q '"message":"BENCH END"' "$work/log"; then
        echo "clients: the run did not finish; the broker's log:"
        tail -n 20 "$work/log"
        exit 1
    fi

    # Per client: the time per round trip of each turn (us): median, min, max. The ratio to raw is
    # the median of the per-turn ratios (turn i of a client over turn i of raw: the turns
    # interleave, so each pair ran under about the same load on this shared machine).
    awk -v reps="$REPS" -v out="${BENCH_OUT:-}" -v placement="$placement" '
        { us = $4 / 1000 / $3; n[$2]++; v[$2, n[$2]] = us }
        function median(a, m,   i, j, t) {
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
        }
        function stats(name,   i, a, r, m) {
            m = n[name]
            for (i = 1; i <= m; i++) { a[i] = v[name, i]; r[i] = v[name, i] / v["raw", i <= n["raw"] ? i : n["raw"]] }
            med[name] = median(a, m); lo[name] = a[1]; hi[name] = a[m]; ratio[name] = median(r, m)
        }
        END {
            if (!("raw" in n)) { print "clients: no raw baseline figure"; exit 1 }
            split("raw c python swift sh", want, " ")
            for (w = 1; w <= 5; w++) if (want[w] in n) stats(want[w])
            base = med["raw"]
            printf "ping round trips through the broker (%s), %d turns each; per round trip: median, min - max:\n", placement, reps
            printf "  %-8s %13s %10s %23s %8s\n", "client", "round trips/s", "us", "min - max us", "vs raw"
            for (w = 1; w <= 5; w++) {
                name = want[w]; if (!(name in med)) continue
                printf "  %-8s %13.0f %10.1f %10.1f - %-10.1f %7.2fx\n", name, 1e6 / med[name], med[name], lo[name], hi[name], ratio[name]
                if (name == "raw" || out == "") continue
                goal = name == "c" ? "<= 1.3x" : "none (reported)"
                met = name == "c" ? (ratio[name] <= 1.3 ? "true" : "false") : "true"
                printf "{\"figure\": \"ping round trip through the broker, %s client vs raw C\", \"placement\": \"%s\", \"ours\": %.2f, \"baseline\": %.2f, \"unit\": \"us\", \"ratio\": %.3f, \"goal\": \"%s\", \"met\": %s, \"min\": %.2f, \"max\": %.2f, \"reps\": %d}\n", \
                    name, placement, med[name], base, ratio[name], goal, met, lo[name], hi[name], n[name] >> out
            }
            if ("c" in med) printf "  goal: C client <= 1.3x raw: %s (%.2fx)\n", ratio["c"] <= 1.3 ? "met" : "NOT met", ratio["c"]
        }' "$work/results"
}

for placement in $PLACEMENT; do
    measure "$placement"
done
