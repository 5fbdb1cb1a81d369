#!/bin/sh
# privsep validate and privsep schema, driven as an external program would drive them:
# the whole vendored JSON-Schema-Test-Suite (draft 2020-12, required part) through --jsonl with the
# remotes served by --map, line-by-line flushing through a FIFO, files mode, --errors, exit codes,
# and `privsep schema check` on the repository's schema/ and on a broken directory.
set -u
cd "$(dirname "$0")/../.." || exit 2
PRIVSEP=${PRIVSEP:-.build/debug/privsep}
[ -x "$PRIVSEP" ] || { echo "20-validate-cli: $PRIVSEP not built (run swift build)"; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "20-validate-cli: SKIP: python3 is needed to unpack the test suite"; exit 0; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
fail=0
check() { # description, command...
    what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}

# 1. The required suite: one schema file, one JSONL input and one expected output per group.
#    Python only unpacks the JSON (jq 1.6 would rewrite 1.0 and big integers); privsep decides.
suite=Tests/JSONSchemaTestSuite
python3 - "$suite/tests/draft2020-12" "$work/groups" <<'PY'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
n = 0
for name in sorted(os.listdir(src)):
    if not name.endswith(".json"):
        continue
    for group in json.load(open(os.path.join(src, name))):
        n += 1
        base = os.path.join(out, "%04d" % n)
        with open(base + ".schema.json", "w") as f:
            json.dump(group["schema"], f, ensure_ascii=False)
        with open(base + ".jsonl", "w") as f:
            for test in group["tests"]:
                f.write(json.dumps(test["data"], ensure_ascii=False) + "\n")
        with open(base + ".expected", "w") as f:
            for test in group["tests"]:
                f.write("valid\n" if test["valid"] else "invalid\n")
        with open(base + ".name", "w") as f:
            f.write(name + ": " + group["description"] + "\n")
PY
cases=0
passed=0
for schema in "$work"/groups/*.schema.json; do
    base=${schema%.schema.json}
    "$PRIVSEP" validate --schema "$schema" --map "http://localhost:1234/=$suite/remotes" --jsonl \
        <"$base.jsonl" >"$base.out" 2>"$base.err"
    total=$(wc -l <"$base.expected")
    good=$(paste -d' ' "$base.expected" "$base.out" | awk '$1 == $2' | wc -l)
    cases=$((cases + total))
    passed=$((passed + good))
    [ "$good" -eq "$total" ] || echo "  mismatch: $(cat "$base.name") ($(cat "$base.err"))"
done
echo "privsep validate --jsonl, JSON-Schema-Test-Suite draft2020-12: $passed/$cases"
check "suite through the CLI: $passed/$cases" [ "$passed" -eq "$cases" -a "$cases" -eq 1299 ]

# 2. One output line per input line, each flushed before the next input exists.
printf '{"type": "integer", "maximum": 5}\n' >"$work/max5.json"
mkfifo "$work/in" "$work/out"
"$PRIVSEP" validate --schema "$work/max5.json" --jsonl <"$work/in" >"$work/out" &
validator=$!
# A watchdog, not a synchronisation: if output were buffered the reads below would block forever.
( sleep 30; kill "$validator" 2>/dev/null ) &
watchdog=$!
exec 3>"$work/in" 4<"$work/out"
echo 3 >&3; IFS= read -r first <&4
echo 7 >&3; IFS= read -r second <&4
echo '{"a": 1, "a": 2}' >&3; IFS= read -r third <&4
exec 3>&-
wait "$validator"; status=$?
exec 4<&-
kill "$watchdog" 2>/dev/null
check "streaming: valid, invalid, duplicate key invalid (got $first $second $third)" \
    [ "$first" = valid -a "$second" = invalid -a "$third" = invalid ]
check "streaming: exit 1 when any is invalid (got $status)" [ "$status" -eq 1 ]

# 3. Files mode, --errors, exit codes.
echo 4 >"$work/ok.json"
echo 9 >"$work/big.json"
printf '[1,' >"$work/broken.json"
out=$("$PRIVSEP" validate --schema "$work/max5.json" "$work/ok.json"); status=$?
check "file valid: exit 0" [ "$status" -eq 0 -a "$out" = "$work/ok.json: valid" ]
out=$("$PRIVSEP" validate --schema "$work/max5.json" "$work/ok.json" "$work/big.json" "$work/broken.json"); status=$?
check "files: one invalid gives exit 1" [ "$status" -eq 1 ]
check "files: FILE: invalid lines" sh -c 'echo "$1" | grep -qx "$2: invalid" && echo "$1" | grep -qx "$3: invalid"' _ "$out" "$work/big.json" "$work/broken.json"
out=$("$PRIVSEP" validate --schema "$work/max5.json" --errors "$work/big.json" | sed -n 2p)
check "--errors prints basic output" sh -c 'echo "$1" | jq -e ".valid == false and .errors[0].keywordLocation == \"/maximum\" and .errors[0].instanceLocation == \"\"" >/dev/null' _ "$out"
"$PRIVSEP" validate --schema "$work/max5.json" >/dev/null 2>&1; status=$?
check "no instances: usage error exit 2" [ "$status" -eq 2 ]
echo '{"type": "integr"}' >"$work/badschema.json"
echo 1 | "$PRIVSEP" validate --schema "$work/badschema.json" --jsonl >/dev/null 2>&1; status=$?
check "bad schema: exit 2" [ "$status" -eq 2 ]
echo '{"$ref": "http://elsewhere.invalid/x.json"}' >"$work/remote.json"
echo 1 | "$PRIVSEP" validate --schema "$work/remote.json" --jsonl >/dev/null 2>&1; status=$?
check "unmapped remote ref: exit 2, nothing fetched" [ "$status" -eq 2 ]
printf '{"type": "string", "format": "ipv4"}\n' >"$work/ipv4.json"
out=$(printf '"1.2.3.4"\n"1.2.3.400"\n' | "$PRIVSEP" validate --schema "$work/ipv4.json" --assert-format --jsonl | tr '\n' ' ')
check "--assert-format (got $out)" [ "$out" = "valid invalid " ]
out=$(printf '"1.2.3.400"\n' | "$PRIVSEP" validate --schema "$work/ipv4.json" --jsonl)
check "format is an annotation by default" [ "$out" = valid ]

# 4. privsep schema check.
out=$("$PRIVSEP" schema check schema/); status=$?
check "schema check schema/ passes ($out)" [ "$status" -eq 0 ]
mkdir -p "$work/dir"
printf '{"interface": "app.x", "description": "x", "messages": {"app.x.go": {"kind": "event", "description": "x", "body": {"type": "object", "additionalProperties": false, "properties": {"n": {"type": "integer", "minimun": 1}}}}}}\n' >"$work/dir/x.json"
out=$("$PRIVSEP" schema check "$work/dir"); status=$?
check "schema check: typo is an error with file and pointer" sh -c 'echo "$1" | grep -q "^error: $2/x.json: /messages/app.x.go/body/properties/n/minimun: unknown keyword"' _ "$out" "$work/dir"
check "schema check: exit 1 on errors" [ "$status" -eq 1 ]
out=$("$PRIVSEP" schema show schema/ privsep.file.open | sed 1d | jq -r .kind)
check "schema show prints the definition" [ "$out" = request ]

exit $fail
