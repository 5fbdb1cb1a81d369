#!/bin/sh
# `make check-sanitize`: the C client under ASan+UBSan (clients/c `make check`), then the Swift
# unit and integration tests (swift test: the real broker, launcher and helpers) built with
# -sanitize=address (.build-asan) and -sanitize=thread (.build-tsan), then the hostile-helper
# suite against the ASan broker. Prints one line per step and exits 1 if any failed.
#   SANITIZE_STEPS   which steps (default: "c asan tsan hostile-asan")
set -u
cd "$(dirname "$0")/../.." || exit 2
SWIFT=${SWIFT:-swift}
steps=${SANITIZE_STEPS:-c asan tsan hostile-asan}
mkdir -p Tests/out/sanitize
failed=0

# The launcher is linked -static-executable, which the sanitizer runtimes do not support; the
# sanitized build keeps an uninstrumented launcher beside the instrumented broker (the launcher
# is a separate, single-threaded process that execs the helper).
build_sanitized() {
    kind=$1 dir=$2
    "$SWIFT" build --scratch-path "$dir" --sanitize="$kind" --product privsep || return 1
    if ! "$SWIFT" build --scratch-path "$dir" --sanitize="$kind" --product privsep-sandbox; then
        echo "sanitize: privsep-sandbox cannot link with -sanitize=$kind (static); using an uninstrumented launcher"
        "$SWIFT" build --scratch-path .build --product privsep-sandbox || return 1
        cp .build/debug/privsep-sandbox "$dir/debug/privsep-sandbox"
    fi
}

run_step() {
    name=$1
    shift
    log=Tests/out/sanitize/$name.log
    if "$@" >"$log" 2>&1; then
        echo "sanitize: $name: clean ($(grep -Eo 'Test run with [0-9]+ tests.*passed.*|[0-9]+ tests? passed|hostile: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1))"
    else
        failed=1
        echo "sanitize: $name: FAILED (log: $log)"
        grep -m5 -E 'ERROR: (Address|Thread|Undefined)Sanitizer|WARNING: ThreadSanitizer|runtime error|✘|FAIL' "$log" | head -10
    fi
    # A sanitizer report fails the step even when the process still exited 0.
    if grep -q -E 'ERROR: (Address|Leak|Undefined)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$log"; then
        failed=1
        echo "sanitize: $name: sanitizer reports: $(grep -c -E 'ERROR: (Address|Leak|Undefined)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$log")"
    fi
}

for step in $steps; do
    case $step in
    c) run_step c-client make -C clients/c check ;;
    asan) run_step swift-asan sh -c "set -e; $SWIFT build --scratch-path .build-asan --sanitize=address --build-tests; \
        $SWIFT test --scratch-path .build-asan --sanitize=address" ;;
    tsan) run_step swift-tsan sh -c "set -e; $SWIFT build --scratch-path .build-tsan --sanitize=thread --build-tests; \
        TSAN_OPTIONS=halt_on_error=0 $SWIFT test --scratch-path .build-tsan --sanitize=thread" ;;
    hostile-asan)
        # shellcheck disable=SC2317
        build_sanitized address .build-asan >Tests/out/sanitize/asan-products.log 2>&1 ||
            { echo "sanitize: hostile-asan: build failed (Tests/out/sanitize/asan-products.log)"; failed=1; continue; }
        run_step hostile-asan env PRIVSEP_BIN=.build-asan/debug ASAN_OPTIONS=detect_leaks=1 python3 Tests/Hostile/run.py ;;
    *) echo "sanitize: unknown step $step"; failed=1 ;;
    esac
done
exit $failed
