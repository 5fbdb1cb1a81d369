#!/bin/sh
# `make check-sanitize`: the C client under ASan+UBSan (clients/c `make check`), then the Swift
# unit and integration tests (swift test: the real broker, launcher and helpers) built with
# -sanitize=address (.build-asan) and -sanitize=thread (.build-tsan), then the hostile-helper
# suite against the ASan broker. Prints one line per step and exits 1 if any failed: a step
# fails when its command fails, when its output holds a sanitizer report, or when any
# instrumented process it started wrote a report file.
#   SANITIZE_STEPS   which steps (default: "c asan tsan hostile-asan")
set -u
cd "$(dirname "$0")/../.." || exit 2
# Leaks in third-party runtimes we cannot fix, each entry explained in the file.
lsan_suppressions=$(pwd)/Tests/Fuzz/lsan.supp
# Helpers run with a bare environment (no PATH), so the sanitizers are told where the symbolizer
# is: without it their stacks have no function names and suppressions cannot match.
symbolizer=$(command -v llvm-symbolizer || true)
[ -n "$symbolizer" ] || symbolizer=$(dirname "$(command -v "$SWIFT")")/llvm-symbolizer
[ -x "$symbolizer" ] && symbolizer=":external_symbolizer_path=$symbolizer" || symbolizer=""
SWIFT=${SWIFT:-swift}
steps=${SANITIZE_STEPS:-c asan tsan hostile-asan}
mkdir -p Tests/out/sanitize
failed=0

# The launcher (privsep-sandbox) is linked -static-executable, which the sanitizer runtimes do
# not support (the link fails), so `swift build --build-tests --sanitize=...` cannot build the
# whole package. Instead: the test bundle, the broker and the Swift example helper are built
# instrumented, and an uninstrumented launcher (its own scratch path, .build-launcher) is put
# beside them; it is a separate single-threaded process that only sets up the sandbox and execs.
build_sanitized() {
    kind=$1 dir=$2
    for product in privsepPackageTests privsep swift-helper; do
        "$SWIFT" build --scratch-path "$dir" --sanitize="$kind" --product "$product" || return 1
    done
    "$SWIFT" build --scratch-path .build-launcher --product privsep-sandbox || return 1
    cp .build-launcher/debug/privsep-sandbox "$dir/debug/privsep-sandbox"
}

# Sanitizer reports of every instrumented process (the test bundle, and the brokers and helpers
# it starts, whose stderr the tests capture) go to files: $reports/<step>.<pid>.
reports=$(pwd)/Tests/out/sanitize/reports
rm -rf "$reports"
mkdir -p "$reports"

run_step() {
    name=$1
    shift
    log=Tests/out/sanitize/$name.log
    # A small ASan quarantine (freed memory held back to catch use after free): the default
    # 256 MiB, even 8 MiB, reads as growth against the broker tests' 64 MiB RSS bound; 4 MiB
    # still covers the last few dozen freed frame buffers.
    ASAN_OPTIONS=${ASAN_OPTIONS:-log_path=$reports/$name:quarantine_size_mb=4$symbolizer} \
        TSAN_OPTIONS=${TSAN_OPTIONS:-log_path=$reports/$name$symbolizer} \
        LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$lsan_suppressions:print_suppressions=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} "$@" >"$log" 2>&1
    status=$?
    # A sanitizer report fails the step even when the process still exited 0 (a child's exit
    # status may never reach the step). The sanitizers only create a log_path file to report
    # something, so any such file counts, whatever it says.
    found=$(cat "$log" "$reports/$name".* 2>/dev/null |
        grep -c -E '(ERROR|WARNING): [A-Za-z]*Sanitizer|Sanitizer CHECK failed|runtime error:')
    files=$(find "$reports" -name "$name.*" -type f | wc -l)
    counts=$(grep -Eo 'Test run with [0-9]+ tests.*|[a-z_]+: [0-9]+ passed, [0-9]+ failed.*' "$log" | tr '\n' ';' | sed 's/;$//')
    if [ "$status" -eq 0 ] && [ "$found" -eq 0 ] && [ "$files" -eq 0 ]; then
        echo "sanitize: $name: clean ($counts)"
        return
    fi
    failed=1
    echo "sanitize: $name: FAILED (exit $status; $found sanitizer reports, $files report files; log: $log, reports: $reports/$name.*)"
    # The JSON Schema suite lists its known optional failures as "optional FAIL": not news.
    grep -E '✘|FAIL' "$log" | grep -v 'optional FAIL' | head -8
    cat "$log" "$reports/$name".* 2>/dev/null |
        grep -E '^(SUMMARY|==[0-9]+==(ERROR|WARNING)|(ERROR|WARNING): [A-Za-z]*Sanitizer)|runtime error:' |
        sort | uniq -c | sort -rn | head -8
}

for step in $steps; do
    case $step in
    c) run_step c-client make -C clients/c check ;;
    asan | tsan)
        kind=address dir=.build-asan
        [ "$step" = tsan ] && kind=thread dir=.build-tsan
        if ! build_sanitized "$kind" "$dir" >"Tests/out/sanitize/build-$step.log" 2>&1; then
            echo "sanitize: swift-$step: build failed (Tests/out/sanitize/build-$step.log)"
            failed=1
            continue
        fi
        # Under TSan the broker cannot answer privsep.dns.resolve: glibc runs getaddrinfo_a
        # lookups on a thread it starts internally, unseen by TSan, whose malloc interceptor then
        # crashes the process (SIGSEGV in __tsan::user_alloc from glibc's resolv/gai_misc.c
        # handle_requests). The ASan step runs that test.
        skip=""
        [ "$step" = tsan ] && skip="--skip dnsAndUserLookupsFollowTheirNameLists"
        # shellcheck disable=SC2086
        run_step "swift-$step" "$SWIFT" test --scratch-path "$dir" --sanitize="$kind" --skip-build $skip ;;
    hostile-asan)
        [ -x .build-asan/debug/privsep ] || build_sanitized address .build-asan >Tests/out/sanitize/build-asan.log 2>&1 ||
            { echo "sanitize: hostile-asan: build failed (Tests/out/sanitize/build-asan.log)"; failed=1; continue; }
        run_step hostile-asan env HOSTILE_EVENTS=100000 PRIVSEP_BIN=.build-asan/debug python3 Tests/Hostile/run.py ;;
    *) echo "sanitize: unknown step $step"; failed=1 ;;
    esac
done
exit $failed
