#!/bin/sh
# privsep check, graph, gen and the manual pages, driven as a user would: each bad config in
# Tests/Tools is caught (its finding code and the exit status), the shipped examples pass, the
# demo's graph renders (SVG when Graphviz is installed), the generated C header compiles
# warning-free with every compiler present and a C program uses its builders and readers,
# docs/messages.md is current, the completion script parses, and the man pages lint clean.
set -u
cd "$(dirname "$0")/../.." || exit 2
PRIVSEP=${PRIVSEP:-.build/debug/privsep}
[ -x "$PRIVSEP" ] || { echo "60-tools: $PRIVSEP not built (run swift build)"; exit 1; }
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }
skip() { echo "SKIP $1"; }
# jq_true FILTER FILE: the filter holds for the JSON in FILE.
jq_true() { jq -e "$1" "$2" >/dev/null; }
# expect DESCRIPTION COMMAND...: ok when COMMAND succeeds.
expect() {
    what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}

# check_finds CONFIG STATUS CODE...: exit status and each [code] in the output.
check_finds() {
    config=$1 status=$2
    shift 2
    "$PRIVSEP" check --quiet "Tests/Tools/$config" >"$work/out" 2>&1
    got=$?
    [ "$got" = "$status" ] || { bad "check $config: exit $got, expected $status"; sed 's/^/    /' "$work/out"; return; }
    for code in "$@"; do
        grep -q "\[$code\]" "$work/out" || { bad "check $config: no [$code] finding"; sed 's/^/    /' "$work/out"; return; }
    done
    ok "check $config: exit $status, $*"
}

# 1. Each listed problem in a purpose-built config.
check_finds bad-unknown-type.json 1 load
check_finds bad-unserved.json 1 unserved
check_finds bad-control.json 1 unserved
check_finds bad-unused-service.json 0 unused_service
check_finds bad-events.json 0 unreceived_event
check_finds bad-unsent-event.json 0 unsent_event
check_finds bad-exposure.json 0 exposure
check_finds bad-broad.json 0 broad_rule
check_finds bad-service-policy.json 0 service_policy
check_finds bad-shared-uid.json 0 shared_uid
"$PRIVSEP" check --strict Tests/Tools/bad-events.json >/dev/null 2>&1
expect "check --strict: warnings fail" [ $? = 1 ]
"$PRIVSEP" check --json Tests/Tools/bad-unserved.json >"$work/out.json" 2>&1
expect "check --json: exit 1 on errors" [ $? = 1 ]
if command -v jq >/dev/null 2>&1; then
    expect "check --json: findings and exposure as JSON" \
        jq_true '.errors == 1 and .findings[0].code == "unserved" and .findings[0].helper == "a" and .exposure[0].rating == "OK"' "$work/out.json"
else
    skip "check --json contents: jq is not installed"
fi
"$PRIVSEP" check Tests/Tools/good.json >"$work/out" 2>&1
expect "check good.json: clean" grep -q "good.json: 0 errors, 0 warnings" "$work/out"
"$PRIVSEP" check Tests/Tools/bad-exposure.json >"$work/out" 2>&1
expect "check: exposure table rates dev UNSAFE" grep -Eq '^  dev +9\.0 UNSAFE' "$work/out"
expect "check: exposure table rates calm OK" grep -Eq '^  calm +0\.0 OK +default sandbox' "$work/out"

# 2. Every shipped example config passes (placeholders and install paths replaced as the demo
#    and httpd scripts do).
for template in examples/demo/demo.json.in examples/*/*.json; do
    [ -e "$template" ] || continue
    name=$(echo "$template" | tr / _)
    sed -e "s#@REPO@#$repo#g" -e "s#@SWIFT_HELPER@#$repo/.build/debug/swift-helper#g" \
        -e "s#@ADDER@#$repo/examples/demo/adder#g" \
        -e "s#/var/www/html#$repo/examples/httpd/www#g" "$template" >"$work/$name"
    if "$PRIVSEP" check --quiet "$work/$name" >"$work/out" 2>&1; then
        ok "check $template: no errors"
    else
        bad "check $template"
        sed 's/^/    /' "$work/out"
    fi
done

# 3. The demo's topology.
demo=$work/examples_demo_demo.json.in
if "$PRIVSEP" graph "$demo" >"$work/demo.dot" 2>"$work/err" && grep -q '"helper:client" -> "helper:adder"' "$work/demo.dot"; then
    ok "graph demo: dot"
else
    bad "graph demo: dot"; cat "$work/err"
fi
if command -v dot >/dev/null 2>&1; then
    if "$PRIVSEP" graph --format svg "$demo" -o "$work/demo.svg" && grep -q '<svg' "$work/demo.svg" && grep -q 'demo.upper' "$work/demo.svg"; then
        ok "graph demo: svg"
    else
        bad "graph demo: svg"
    fi
else
    skip "graph --format svg: Graphviz's dot is not installed (make deps installs graphviz)"
fi

# 4. The generated C header: warning-free with each compiler, used by a C program.
"$PRIVSEP" gen c --schema schema --schema examples/demo/schema -o "$work/generated.h" || bad "gen c"
cat >"$work/expected" <<'OUT'
demo.add {"a":2,"b":40}
privsep.file.open {"access":["read"],"mode":420,"path":"/etc/hostname"}
privsep.hello {"client":"gen-user/1","protocol":1}
privsep.dns.resolve {"family":"ipv4","name":"example.org"}
gen-user: ok
OUT
for compiler in cc gcc clang; do
    command -v "$compiler" >/dev/null 2>&1 || { skip "gen c with $compiler: not installed"; continue; }
    if "$compiler" -std=c11 -Wall -Wextra -Werror -pedantic -I"$work" -Iclients/c/include \
        Tests/Tools/c/gen_user.c -ljansson -o "$work/gen_user" >"$work/cc.log" 2>&1 \
        && "$work/gen_user" >"$work/got" && cmp -s "$work/got" "$work/expected"; then
        ok "gen c: header compiles with $compiler, builders and readers work"
    else
        bad "gen c with $compiler"
        cat "$work/cc.log" "$work/got" 2>/dev/null | sed 's/^/    /'
    fi
done

# 4b. The same header in real helpers under the broker: one serves demo.add with the generated
#     readers and reply builder, the other calls it with the generated builder and reports the
#     sum through privsep.log. Needs root (per-helper uids) and libprivsep.
if [ "$(id -u)" != 0 ]; then
    skip "gen c under the broker: needs root"
elif ! make -s -C clients/c >"$work/make.log" 2>&1; then
    bad "gen c under the broker: libprivsep does not build"; sed 's/^/    /' "$work/make.log"
elif ! cc -std=c11 -Wall -Wextra -Werror -I"$work" -Iclients/c/include -o "$work/gen_helper" \
        Tests/Tools/c/gen_helper.c clients/c/build/libprivsep.a -ljansson >"$work/cc.log" 2>&1; then
    bad "gen c under the broker: the helper does not build"; sed 's/^/    /' "$work/cc.log"
else
    chmod 755 "$work" "$work/gen_helper"
    cat >"$work/gen.json" <<JSON
{
  "schema_dirs": ["$repo/examples/demo/schema"],
  "shutdown_grace_ms": 2000,
  "helpers": {
    "server": {"command": ["/opt/gen_helper", "server"], "sandbox": {"ro_bind": ["$work/gen_helper:/opt/gen_helper"]},
               "serves": ["demo.add"]},
    "client": {"command": ["/opt/gen_helper", "client"], "sandbox": {"ro_bind": ["$work/gen_helper:/opt/gen_helper"]},
               "may_send": ["demo.add", "privsep.log"], "restart": {"policy": "never"}}
  }
}
JSON
    "$PRIVSEP" check --quiet --strict "$work/gen.json" >"$work/out" 2>&1
    expect "gen c under the broker: privsep check --strict passes the config" [ $? = 0 ]
    : >"$work/broker.log"
    "$PRIVSEP" run "$work/gen.json" 2>"$work/broker.log" &
    broker=$!
    # A bound on the run, not a synchronisation: the log line below ends it.
    (
        trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
        sleep 60 & sleeper=$!
        wait "$sleeper" && kill -TERM "$broker" 2>/dev/null
    ) >/dev/null 2>&1 &
    watchdog=$!
    tail -n +1 -f "$work/broker.log" --pid="$broker" | while IFS= read -r line; do
        case $line in *"gen-helper: "*) kill -TERM "$broker" 2>/dev/null; break ;; esac
    done
    wait "$broker"
    status=$?
    kill "$watchdog" 2>/dev/null
    if grep -q "gen-helper: ok sum=42" "$work/broker.log" && [ "$status" = 0 ]; then
        ok "gen c under the broker: a C helper's generated request is served and its reply read (sum=42)"
    else
        bad "gen c under the broker (broker exit $status)"; tail -n 20 "$work/broker.log" | sed 's/^/    /'
    fi
fi

# 5. Generated files in the repository are current.
"$PRIVSEP" gen docs --schema schema -o "$work/messages.md"
expect "gen docs: docs/messages.md is current (else: privsep gen docs --schema schema -o docs/messages.md)" \
    cmp -s "$work/messages.md" docs/messages.md
"$PRIVSEP" gen swift --schema schema --schema examples/demo/schema -o "$work/Generated.swift"
expect "gen swift: Tests/PrivSepToolsTests/Generated.swift is current" \
    cmp -s "$work/Generated.swift" Tests/PrivSepToolsTests/Generated.swift
"$PRIVSEP" gen c --schema /nonexistent >/dev/null 2>&1
expect "gen: a bad schema directory exits 2" [ $? = 2 ]

# 6. Shell completion.
for shell in bash zsh fish; do
    "$PRIVSEP" --generate-completion-script "$shell" >"$work/completion.$shell" 2>&1 || { bad "completion $shell"; continue; }
    if ! grep -q 'check' "$work/completion.$shell" || ! grep -q 'graph' "$work/completion.$shell"; then
        bad "completion $shell: subcommands missing"
    elif [ "$shell" = bash ] && command -v bash >/dev/null 2>&1; then
        expect "completion bash: parses" bash -n "$work/completion.bash"
    else
        ok "completion $shell: generated"
    fi
done

# 7. Manual pages.
for page in docs/man/privsep.1 docs/man/privsep.json.5; do
    if command -v mandoc >/dev/null 2>&1; then
        if mandoc -T lint -W warning "$page" >"$work/lint" 2>&1; then ok "man $page: mandoc -T lint"; else bad "man $page"; sed 's/^/    /' "$work/lint"; fi
    elif command -v groff >/dev/null 2>&1; then
        if groff -mandoc -z -ww "$page" >"$work/lint" 2>&1 && [ ! -s "$work/lint" ]; then ok "man $page: groff -z"; else bad "man $page"; sed 's/^/    /' "$work/lint"; fi
    else
        skip "man $page: neither mandoc nor groff is installed"
    fi
done
# Every subcommand is documented in privsep(1).
missing=""
for sub in $("$PRIVSEP" --help | awk '/^SUBCOMMANDS:/ {on=1; next} on && /^  [a-z]/ {print $1}'); do
    grep -q "^\.It Cm $sub" docs/man/privsep.1 || missing="$missing $sub"
done
expect "man privsep.1: every subcommand of privsep --help is described${missing:+ (missing:$missing)}" [ -z "$missing" ]

echo "60-tools: $passed passed, $failed failed"
[ "$failed" = 0 ]
