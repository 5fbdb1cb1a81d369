#!/bin/sh
# Suite: the C client (clients/c). Builds libprivsep warning-free (-Wall -Wextra -Werror, gcc
# and clang when present), runs its unit, conformance and scenario tests under ASan and UBSan,
# installs it into a staging DESTDIR, builds helpers there with pkg-config (shared and static)
# and runs them against the stand-in broker, and checks the man page and the exported symbols.
# One line per step (each step's own per-case lines above it), then "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 2
suite=client-c
. Tests/suites/lib/client-suite.sh
stage=$(mktemp -d "${TMPDIR:-/tmp}/privsep-c-stage.XXXXXX") || exit 2
trap 'rm -rf "$stage"' EXIT
pc() {
    PKG_CONFIG_PATH="$stage/usr/local/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage" pkg-config "$@"
}

build_installed() {
    # shellcheck disable=SC2046 # pkg-config output is a list of flags
    cc -Wall -Wextra -Werror -o "$out/scenario-shared" clients/c/tests/scenario.c $(pc --cflags --libs privsep)
}

run_installed() {
    (
        LD_LIBRARY_PATH="$stage/usr/local/lib"
        export LD_LIBRARY_PATH
        broker --label c_installed -- "$out/scenario-shared"
    )
}

build_doc_static() {
    awk '/^```c$/ { f = 1; next } /^```$/ { if (f) exit } f' docs/client-c.md >"$out/upper.c"
    # shellcheck disable=SC2046 # pkg-config output is a list of flags
    cc -Wall -Wextra -Werror -o "$out/upper" "$out/upper.c" $(pc --cflags privsep) \
        "$stage/usr/local/lib/libprivsep.a" $(pkg-config --libs jansson)
}

installed_files() {
    for f in include/privsep.h lib/libprivsep.a lib/libprivsep.so.0.1.0 lib/libprivsep.so.0 \
        lib/libprivsep.so lib/pkgconfig/privsep.pc share/man/man3/privsep.3; do
        [ -e "$stage/usr/local/$f" ] || { echo "missing $f"; return 1; }
    done
}

man_page() {
    groff -mandoc -ww -z clients/c/privsep.3 2>"$out/man.warnings" || return 1
    if [ -s "$out/man.warnings" ]; then
        cat "$out/man.warnings"
        return 1
    fi
}

only_api_exported() {
    extra=$(nm -D --defined-only clients/c/build/libprivsep.so | awk '$2 == "T" && $3 !~ /^privsep_/')
    [ -z "$extra" ] || { echo "exported beyond the API: $extra"; return 1; }
}

step build-gcc make -C clients/c all
if command -v clang >/dev/null 2>&1; then
    step build-clang make -C clients/c B=build/clang CC=clang all
fi
step check-asan-ubsan make -C clients/c check
step install-destdir make -C clients/c install DESTDIR="$stage" PREFIX=/usr/local
step installed-files installed_files
step pkg-config-build build_installed
step pkg-config-helper-runs run_installed
step doc-helper-static-build build_doc_static
step doc-helper-runs broker --scenario doc --label c_doc -- "$out/upper"
if command -v groff >/dev/null 2>&1; then
    step man-page man_page
else
    echo "n/a  client-c: man-page (groff is not installed)"
fi
step exported-symbols only_api_exported

finish
