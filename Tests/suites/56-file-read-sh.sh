#!/bin/sh
# Suite: privsep.file.read from the shell client (clients/sh/privsep.sh) under the real broker:
# a permitted file comes back as its text, the same file over max_bytes is privsep.too_large,
# a file outside the rules is privsep.denied; each decision has its audit line. The error
# replies' data reach the script through privsep_error_data: the denial's reason, and for a
# body the schema refuses (privsep.invalid) the JSON pointer of the bad member.
set -u
cd "$(dirname "$0")/../.." || exit 2
suite=file-read-sh
# shellcheck source=Tests/suites/lib/broker-suite.sh
. Tests/suites/lib/broker-suite.sh
printf 'hello from the broker\n' >"$work/data.txt"
cat >"$work/reader.sh" <<'SH'
#!/bin/sh
# shellcheck disable=SC1091
. /opt/privsep/clients/sh/privsep.sh || exit 1
privsep_hello >/dev/null || exit 1
body=$(privsep_request privsep.file.read "{\"path\":\"$DATA\"}")
printf "%s status=%s %s\n" read $? "$body" >&2
body=$(privsep_request privsep.file.read "{\"path\":\"$DATA\",\"max_bytes\":4}")
printf "%s status=%s %s\n" small $? "$body" >&2
body=$(privsep_request privsep.file.read '{"path":"/etc/passwd"}')
printf "%s status=%s %s %s\n" outside $? "$body" "$(privsep_error_data)" >&2
body=$(privsep_request privsep.file.read "{\"path\":\"$DATA\",\"max_bytes\":0}")
printf "%s status=%s %s %s\n" invalid $? "$body" "$(privsep_error_data)" >&2
SH
cat >"$work/config.json" <<JSON
{
  "helpers": {
    "reader": {
      "command": ["/bin/sh", "$work/reader.sh"],
      "sandbox": {"ro_bind": ["$repo:/opt/privsep", "$work"], "setenv": {"DATA": "$work/data.txt"}},
      "may_send": ["privsep.file.read"],
      "files": [{"path": "$work/data.txt", "access": ["read"]}],
      "restart": {"policy": "never"}
    }
  }
}
JSON
"$bin/privsep" run "$work/config.json" --log-format json 2>"$out/broker.log" &
broker=$!

python3 - "$out/broker.log" <<'PY'
import json, sys, time
log = sys.argv[1]
def lines():
    result = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            try: result.append(json.loads(line))
            except ValueError: pass
    return result
deadline = time.monotonic() + 30
while not any(l.get("message", "").startswith("invalid status=") for l in lines()):
    if time.monotonic() > deadline:
        print("FAIL file-read-sh: no result from the shell helper\n" + open(log).read()[-3000:]); sys.exit(1)
    time.sleep(0.05)
messages = {l["message"].split(" ")[0]: l["message"] for l in lines() if "status=" in l.get("message", "")}
audits = [l for l in lines() if l.get("message") == "audit"]
checks = [
    ("content as utf-8 text", messages.get("read", "").startswith("read status=0 ")
        and json.loads(messages["read"].split(" ", 2)[2]) == {"encoding": "utf-8", "content": "hello from the broker\n", "size": 22}),
    ("over max_bytes: privsep.too_large", messages.get("small") == "small status=1 privsep.too_large"),
    ("outside the rules: privsep.denied, data {reason: no_rule}",
        messages.get("outside") == 'outside status=1 privsep.denied {"reason":"no_rule"}'),
    ("a body the schema refuses: privsep.invalid, data points at /max_bytes",
        messages.get("invalid", "").startswith("invalid status=1 privsep.invalid {")
        and any(e.get("instanceLocation") == "/max_bytes"
                for e in json.loads(messages["invalid"].split(" ", 3)[3]).get("errors", []))),
    ("three audit lines", [a.get("decision") for a in audits] == ["granted", "failed", "denied"]),
]
failed = 0
for name, ok in checks:
    print(("ok   " if ok else "FAIL ") + "file-read-sh: " + name)
    failed += not ok
if failed: print(json.dumps(messages), json.dumps(audits))
print(f"file-read-sh: {len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
status=$?
kill -TERM "$broker" 2>/dev/null
wait "$broker"
broker=""
exit "$status"
