#!/usr/bin/env python3
"""The soak test: many requests across helpers in C and Python while a chaos loop SIGKILLs the
servers.

One broker (`privsep run`), two servers (soak.c in C, soak.py in Python) and two requesters (one
per language) that each send their share of the requests, alternating between the two servers,
with a window of requests in flight. Every `--chaos` seconds the driver SIGKILLs one server,
chosen at random, by the pid `privsep status --json` reports; the broker answers what it was
serving with privsep.unavailable (or privsep.timeout) and restarts it.

Checks (each prints a line; any failure makes the exit status 1):
  counts   each requester: requests sent == final replies received (it counts them itself);
           the broker's own counters: requests == final_replies;
  fds      /proc/<broker>/fd at the end within +-10% of the warm baseline (and printed exactly);
  rss      VmRSS at the end within +-10% of the warm baseline.
The warm baseline is sampled once 5% of the requests are done (allocator pools are warm then).

Usage: run.py [--requests N] [--chaos SECONDS] [--window W] [--timeout SECONDS]
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from brokerprobe import open_fds, rss_kib, status as probe_status  # noqa: E402

BIN = os.environ.get("PRIVSEP_BIN", ".build/debug")


def config(work, repo, n_c, n_py, window):
    restart = {"policy": "always", "backoff_ms": 20, "backoff_max_ms": 200, "max_restarts": 1000000, "window_ms": 1000}
    limits = {"request_timeout_ms": 2000}
    c_bin = {"ro_bind": [f"{work}/bin:/opt/s"], "bind": [f"{work}/share:/opt/share"]}
    py = {"ro_bind": [f"{repo}:/opt/privsep"], "bind": [f"{work}/share:/opt/share"]}
    py_cmd = ["/usr/bin/python3", "/opt/privsep/Tests/Soak/soak.py"]
    return {
        "description": "soak test",
        "schema_dirs": [f"{repo}/Tests/Soak/schema"],
        "shutdown_grace_ms": 2000,
        "control_socket": f"{work}/control.sock",
        "helpers": {
            "csrv": {"command": ["/opt/s/soak", "serve"], "sandbox": c_bin, "serves": ["soak.echo.c"],
                     "limits": limits, "restart": restart},
            "pysrv": {"command": py_cmd + ["serve"], "sandbox": py, "serves": ["soak.echo.py"],
                      "limits": limits, "restart": restart},
            "creq": {"command": ["/opt/s/soak", "request", str(n_c), str(window), "/opt/share/creq.json"],
                     "sandbox": c_bin, "may_send": ["soak.echo.c", "soak.echo.py"], "limits": limits,
                     "restart": {"policy": "never"}},
            "pyreq": {"command": py_cmd + ["request", str(n_py), str(window), "/opt/share/pyreq.json"],
                      "sandbox": py, "may_send": ["soak.echo.c", "soak.echo.py"], "limits": limits,
                      "restart": {"policy": "never"}},
        },
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--chaos", type=float, default=0.5, help="seconds between SIGKILLs")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--python-share", type=float, default=0.25)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("soak: SKIP (the broker sets uids and namespaces: run as root)")
        return 0
    repo = os.getcwd()
    work = tempfile.mkdtemp(prefix="privsep-soak.")
    os.chmod(work, 0o755)
    for d in ("bin", "share"):
        os.mkdir(f"{work}/{d}")
    os.chmod(f"{work}/share", 0o777)
    subprocess.run(["make", "-s", "-C", "clients/c"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-Iclients/c/include", "-o", f"{work}/bin/soak",
                    "Tests/Soak/soak.c", "clients/c/build/libprivsep.a", "-ljansson"], check=True)
    n_py = int(args.requests * args.python_share)
    n_c = args.requests - n_py
    cfg = f"{work}/config.json"
    with open(cfg, "w") as f:
        json.dump(config(work, repo, n_c, n_py, args.window), f, indent=1)
    control = f"{work}/control.sock"
    log = open(f"{work}/broker.log", "wb")
    broker = subprocess.Popen([f"{BIN}/privsep", "run", cfg], stdout=log, stderr=subprocess.STDOUT)
    failures = []
    kills = 0
    samples = []
    rng = random.Random(int(os.environ.get("SOAK_SEED", "1")))
    try:
        start = time.monotonic()
        deadline = start + args.timeout
        baseline = None
        next_kill = start + args.chaos
        next_sample = start
        results = {}
        while time.monotonic() < deadline and broker.poll() is None:
            now = time.monotonic()
            if now >= next_sample:
                st = probe_status(f"{BIN}/privsep", control)
                if st is not None:
                    b = st["broker"]
                    s = (round(now - start, 1), open_fds(broker.pid), rss_kib(broker.pid), b["requests"], b["final_replies"])
                    samples.append(s)
                    if baseline is None and b["requests"] >= args.requests * 0.05:
                        baseline = s
                # Often until the warm baseline is in (a short run can be over within a
                # second), then once a second.
                next_sample = now + (1.0 if baseline else 0.05)
            if now >= next_kill and len(results) < 2:
                st = probe_status(f"{BIN}/privsep", control)
                victims = [h for h in (st or {}).get("helpers", []) if h["name"] in ("csrv", "pysrv") and "pid" in h]
                if victims:
                    v = rng.choice(victims)
                    try:
                        os.kill(v["pid"], signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                next_kill = now + args.chaos
            for name in ("creq", "pyreq"):
                path = f"{work}/share/{name}.json"
                if name not in results and os.path.exists(path):
                    with open(path) as f:
                        text = f.read()
                    if text.endswith("\n"):
                        results[name] = json.loads(text)
            if len(results) == 2:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        if broker.poll() is not None:
            failures.append(f"broker exited with status {broker.returncode}")
        if len(results) < 2:
            failures.append(f"requesters did not finish within {args.timeout} s ({sorted(results)} did)")
        # Let restarted servers finish their hello so the end state matches the baseline's.
        t = time.monotonic()
        while broker.poll() is None and time.monotonic() - t < 5:
            st = probe_status(f"{BIN}/privsep", control)
            if st and all(h["state"] == "ready" for h in st["helpers"]):
                break
            time.sleep(0.1)
        st = probe_status(f"{BIN}/privsep", control) if broker.poll() is None else None
        end = (round(time.monotonic() - start, 1), open_fds(broker.pid), rss_kib(broker.pid),
               st["broker"]["requests"], st["broker"]["final_replies"]) if st else None
        total_sent = total_final = 0
        codes = {}
        for name, r in sorted(results.items()):
            total_sent += r["sent"]
            total_final += r["final"]
            for k, v in r["codes"].items():
                codes[k] = codes.get(k, 0) + v
            ok = r["sent"] == r["final"] and r["stray"] == 0
            print(f"soak: {name} ({r['lang']}): sent {r['sent']}, final replies {r['final']}, stray {r['stray']}, "
                  f"codes {json.dumps(r['codes'], sort_keys=True)} {'ok' if ok else 'MISMATCH'}")
            if not ok:
                failures.append(f"{name}: sent {r['sent']} != final {r['final']}")
        print(f"soak: total: {total_sent} requests sent, {total_final} final replies, {kills} servers SIGKILLed, "
              f"{elapsed:.1f} s ({total_sent / elapsed:.0f} req/s); by code {json.dumps(codes, sort_keys=True)}")
        if total_sent != args.requests:
            failures.append(f"sent {total_sent} of {args.requests}")
        if end:
            print(f"soak: broker counters: requests {end[3]}, final_replies {end[4]} "
                  f"({'balanced' if end[3] == end[4] else 'UNBALANCED'})")
            if end[3] != end[4]:
                failures.append("broker counters do not balance")
        print("soak: samples (s, fds, rss_kib, requests, final_replies): "
              + " ".join(f"{s[0]}:{s[1]}/{s[2]}" for s in samples[:: max(1, len(samples) // 20)]))
        if baseline and end:
            for label, i in (("fds", 1), ("rss_kib", 2)):
                lo, hi = baseline[i] * 0.9, baseline[i] * 1.1
                flat = lo <= end[i] <= hi
                print(f"soak: {label}: start {samples[0][i]}, warm baseline {baseline[i]}, max {max(s[i] for s in samples)}, "
                      f"end {end[i]} ({'flat' if flat else 'NOT FLAT'} within +-10%)")
                if not flat:
                    failures.append(f"{label} not flat: {baseline[i]} -> {end[i]}")
        elif end:
            failures.append("no warm baseline sample")
    finally:
        if broker.poll() is None:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(20)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait()
        if failures:
            with open(f"{work}/broker.log", "rb") as f:
                tail = f.read()[-3000:].decode("utf-8", "replace")
            print("soak: broker log tail:\n" + tail)
        shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"soak: FAIL: {failure}")
    print(f"soak: {'passed' if not failures else 'FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
