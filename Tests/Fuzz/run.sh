#!/bin/sh
# Builds and runs the libFuzzer targets (Tests/Fuzz, docs/security.md):
#   wire      PrivSepWire.FrameReceiver (frame decoder + envelope), as the broker reads a helper
#   json      PrivSepJSON.JSONParser (+ serializer round trip)
#   schema    PrivSepSchema compiler + validator (schema NUL instance)
#   config    config loading: JSON, the config schema, ConfigReader
#   c_decode  clients/c: privsep_decode / privsep_envelope_check / privsep_feed + privsep_take
#
# Usage: Tests/Fuzz/run.sh [TARGET...]      (default: all)
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_DIR      where corpora, binaries and crash files live (default /tmp/privsep-fuzz)
#   FUZZ_JOBS     parallel libFuzzer workers per target (default 1)
# The Swift targets need the toolchain's libFuzzer (swiftc -sanitize=fuzzer); the library
# modules are built instrumented into .build-fuzz (SwiftPM, -sanitize=fuzzer,address as ONE
# flag: a second -sanitize= replaces the first, and the objects would lose their coverage) and
# the entry points linked against their objects. Prints one line per target:
#   fuzz: NAME: N execs in S s, C crashes
# and exits 1 when any target crashed (the crash input is kept in $FUZZ_DIR/NAME/crash-*),
# 0 otherwise; a target the toolchain cannot build is skipped with its reason.
set -u
cd "$(dirname "$0")/../.." || exit 2
SECONDS_EACH=${FUZZ_SECONDS:-60}
DIR=${FUZZ_DIR:-/tmp/privsep-fuzz}
JOBS=${FUZZ_JOBS:-1}
SWIFT=${SWIFT:-swift}
SWIFTC=$(dirname "$(command -v "$SWIFT")")/swiftc
CLANG=$(dirname "$(command -v "$SWIFT")")/clang
[ -x "$CLANG" ] || CLANG=clang
targets=${*:-wire json schema config c_decode}
mkdir -p "$DIR/bin" "$DIR/log"
python3 Tests/Fuzz/seeds.py "$DIR/seeds" >/dev/null || exit 2

# Does this toolchain link a libFuzzer binary at all? (A one-line Swift target.)
probe() {
    printf '@_cdecl("LLVMFuzzerTestOneInput") public func f(_ d: UnsafePointer<UInt8>, _ n: Int) -> CInt { 0 }\n' >"$DIR/bin/probe.swift"
    "$SWIFTC" -sanitize=fuzzer -parse-as-library "$DIR/bin/probe.swift" -o "$DIR/bin/probe" >"$DIR/log/probe" 2>&1
}

swift_ready=""
build_swift_modules() {
    [ -n "$swift_ready" ] && return "$swift_ready"
    if ! probe; then
        echo "fuzz: swift targets SKIPPED: swiftc -sanitize=fuzzer cannot link here ($(tail -1 "$DIR/log/probe"))"
        swift_ready=1
        cannot_link=1
        return 1
    fi
    if ! "$SWIFT" build --scratch-path .build-fuzz --target PrivSepBroker \
        -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address >"$DIR/log/swift-build" 2>&1; then
        echo "fuzz: swift targets FAILED to build (see $DIR/log/swift-build)"
        swift_ready=2
        return 2
    fi
    swift_ready=0
}

build() {
    name=$1
    case $name in
    c_decode)
        "$CLANG" -g -O1 -D_GNU_SOURCE -std=c11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
            -Iclients/c/include -Iclients/c/src $(pkg-config --cflags jansson) -o "$DIR/bin/$name" \
            Tests/Fuzz/c/decode.c clients/c/src/envelope.c clients/c/src/conn.c clients/c/src/json.c \
            $(pkg-config --libs jansson) >"$DIR/log/build-$name" 2>&1
        ;;
    *)
        build_swift_modules || return $?
        B=.build-fuzz/debug
        case $name in
        json) mods="PrivSepJSON" ;;
        wire) mods="PrivSepJSON PrivSepWire SystemPackage CSystem CPrivSep" ;;
        schema) mods="PrivSepJSON PrivSepSchema" ;;
        config) mods="PrivSepJSON PrivSepWire PrivSepSchema PrivSepSandbox PrivSepBroker SystemPackage CSystem CPrivSep Logging" ;;
        esac
        objs=""
        for m in $mods; do objs="$objs $(ls $B/$m.build/*.o)"; done
        # shellcheck disable=SC2086
        "$SWIFTC" -sanitize=fuzzer,address -parse-as-library -g -I "$B/Modules" \
            -Xcc -fmodule-map-file="$B/CPrivSep.build/module.modulemap" -I Sources/CPrivSep/include \
            -I Sources/CSeccomp -I Sources/CJansson -I .build-fuzz/checkouts/swift-system/Sources/CSystem/include \
            "Tests/Fuzz/swift/$name.swift" $objs -lseccomp -ljansson -o "$DIR/bin/$name" >"$DIR/log/build-$name" 2>&1
        ;;
    esac
}

crashed=0
cannot_link=""
for name in $targets; do
    if ! build "$name"; then
        cause=$(grep -m1 -i error "$DIR/log/build-$name" 2>/dev/null || tail -1 "$DIR/log/build-$name" 2>/dev/null)
        # Only a toolchain that cannot link fuzzers here is a reason to skip; a target that
        # no longer builds is a failure (its sources moved on without it).
        if [ -n "$cannot_link" ] && [ "$name" != c_decode ]; then
            echo "fuzz: $name: SKIPPED ($cause)"
        else
            echo "fuzz: $name: FAILED: build failed ($cause)"
            crashed=1
        fi
        continue
    fi
    mkdir -p "$DIR/$name/corpus"
    log="$DIR/log/run-$name"
    before=$(ls "$DIR/$name" | grep -c '^crash-\|^oom-\|^timeout-' || true)
    # -rss_limit_mb: the targets' own limits must bound memory; -timeout: the same for time.
    (cd "$DIR/$name" && "$DIR/bin/$name" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -jobs="$JOBS" -workers="$JOBS" corpus "$DIR/seeds/$name") >"$log" 2>&1
    status=$?
    after=$(ls "$DIR/$name" | grep -c '^crash-\|^oom-\|^timeout-' || true)
    execs=$(grep 'stat::number_of_executed_units' "$log" "$DIR/$name"/fuzz-*.log 2>/dev/null | awk '{s += $NF} END {print s + 0}')
    new=$((after - before))
    echo "fuzz: $name: $execs execs in ${SECONDS_EACH} s, $new crashes (exit $status), corpus $(ls "$DIR/$name/corpus" | wc -l)"
    if [ "$new" -gt 0 ] || { [ "$status" -ne 0 ] && [ "$JOBS" = 1 ]; }; then
        crashed=1
        grep -m3 -A12 'ERROR: \|Fatal error\|==ERROR' "$log" "$DIR/$name"/fuzz-*.log 2>/dev/null | head -30
        ls "$DIR/$name" | grep '^crash-\|^oom-\|^timeout-' | sed "s|^|fuzz: $name: kept $DIR/$name/|"
    fi
done
exit $crashed
