#!/bin/sh
# Suite: examples/httpd with the real broker on 127.0.0.1 (a free high port): 200 with the
# right bytes and content type, HEAD, 404, 403 for escapes (.., %2e%2e, a symlink out of the
# document root), 405, 400, and an audit line for every decision the broker made.
set -u
cd "$(dirname "$0")/../.." || exit 2
suite=httpd
# shellcheck source=Tests/suites/lib/broker-suite.sh
. Tests/suites/lib/broker-suite.sh
mkdir -p "$work/www/sub" "$work/bin"
cp examples/httpd/www/index.html examples/httpd/www/style.css "$work/www/"
printf 'nested\n' >"$work/www/sub/page.txt"
printf 'TOP SECRET\n' >"$work/secret.txt"
ln -s "$work/secret.txt" "$work/www/leak.txt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

HTTPD_WORK="$work/bin" PRIVSEP_BIN="$bin" HTTPD_BROKER_ARGS="--log-format json" \
    sh examples/httpd/run.sh "$port" "$work/www" 127.0.0.1 2>"$out/broker.log" &
broker=$!

python3 - "$port" "$work/www" "$out/broker.log" <<'PY'
import json, socket, sys, time

port, root, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
passed = failed = 0

def check(name, ok, detail=""):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + "httpd: " + name + ("" if ok else "  " + detail))
    if ok: passed += 1
    else: failed += 1

def log_lines():
    lines = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            try: lines.append(json.loads(line))
            except ValueError: pass
    return lines

# Bounded wait for the helper's "listening" line (the broker started it and bound the port).
deadline = time.monotonic() + 30
while not any("listening on" in l.get("message", "") for l in log_lines()):
    if time.monotonic() > deadline:
        check("server started", False, open(log).read()[-2000:]); sys.exit(1)
    time.sleep(0.05)

def http(raw):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(raw)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, headers, body

def get(path, method="GET"):
    return http(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())

index = open(root + "/index.html", "rb").read()
s, h, b = get("/")
check("GET / is index.html, 200", s == 200 and b == index, f"{s} {b[:80]!r}")
check("text/html content type", h.get("content-type", "").startswith("text/html"), str(h))
check("Content-Length is the file size", h.get("content-length") == str(len(index)), str(h))
s, h, b = get("/style.css")
check("GET /style.css, 200, text/css", s == 200 and h.get("content-type", "").startswith("text/css")
      and b == open(root + "/style.css", "rb").read(), f"{s} {h}")
s, h, b = get("/sub/page.txt?x=1")
check("nested file with a query string", s == 200 and b == b"nested\n", f"{s} {b!r}")
s, h, b = get("/style.css", "HEAD")
check("HEAD: headers, no body", s == 200 and b == b"" and h.get("content-length") == str(len(open(root + "/style.css", "rb").read())), f"{s} {h} {b!r}")
s, _, _ = get("/missing.html")
check("missing file: 404", s == 404, str(s))
s, h, _ = get("/sub")
check("directory without /: 301 to sub/", s == 301 and h.get("location") == "/sub/", f"{s} {h}")
for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt", "/leak.txt", "//etc/passwd"]:
    s, _, b = get(path)
    check(f"escape {path}: 403", s == 403 and b"SECRET" not in b and b"root:" not in b, f"{s} {b[:80]!r}")
s, h, _ = get("/", "POST")
check("POST: 405 with Allow", s == 405 and "GET" in h.get("allow", ""), f"{s} {h}")
s, _, _ = http(b"garbage\r\n\r\n")
check("malformed request: 400", s == 400, str(s))
s, _, _ = get("/%00x")
check("encoded NUL: 400", s == 400, str(s))

# The broker audited every decision: the listening socket, 4 file grants (/, style.css,
# sub/page.txt, HEAD), denials for the 5 escapes, failures for missing and the directory.
deadline = time.monotonic() + 10
while True:
    audits = [l for l in log_lines() if l.get("message") == "audit"]
    if len(audits) >= 12 or time.monotonic() > deadline: break
    time.sleep(0.05)
decisions = [(a.get("type"), a.get("decision")) for a in audits]
check("12 audit lines", len(audits) == 12, str(decisions))
check("net.listen granted by its rule", ("privsep.net.listen", "granted") in decisions
      and any(a.get("rule") == "/helpers/httpd/net/listen/0" for a in audits), str(decisions))
check("4 file grants", decisions.count(("privsep.file.open", "granted")) == 4, str(decisions))
check("5 denials", decisions.count(("privsep.file.open", "denied")) == 5, str(decisions))
check("2 failures (not found, directory)", decisions.count(("privsep.file.open", "failed")) == 2, str(decisions))
check("no grant names the secret", not any("secret" in a.get("arguments", "") and a.get("decision") == "granted" for a in audits))
print(f"httpd: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
status=$?
kill -TERM "$broker" 2>/dev/null
wait "$broker"
broker_status=$?
broker=""
if [ "$broker_status" -ne 0 ]; then
    echo "FAIL httpd: the broker exited with status $broker_status"
    tail -n 20 "$out/broker.log"
    status=1
fi
exit "$status"
