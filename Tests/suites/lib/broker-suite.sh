# Shared by the suites that run the real broker (55, 56), sourced from the repository root after
# setting `suite` (e.g. suite=httpd): the log directory `out`, the build `bin` (PRIVSEP_BIN, or
# .build/debug), a skip when not root (the broker's sandbox needs it), a scratch directory `work`
# readable by the helpers' uids, and a trap that stops `$broker` (a pid, once started) and
# removes `work` however the suite ends.
# shellcheck shell=sh disable=SC2154 # suite: set by the sourcing suite

repo=$(pwd)
out=Tests/out/$suite
rm -rf "$out"
mkdir -p "$out"
bin=${PRIVSEP_BIN:-$repo/.build/debug}
[ "$(id -u)" = 0 ] || { echo "$suite: needs root (the broker's sandbox); skipped"; exit 0; }
[ -x "$bin/privsep" ] || { echo "FAIL $suite: no $bin/privsep (run swift build)"; exit 1; }

work=$(mktemp -d "/tmp/privsep-$suite.XXXXXX")
chmod 755 "$work"
broker=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    [ -n "$broker" ] && kill -TERM "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
