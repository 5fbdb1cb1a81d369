#!/usr/bin/env python3
"""The hostile-helper suite: one broker (`privsep run`), a witness, two good helpers and one
hostile helper that runs one attack after another (Tests/Hostile/hostile.c).

For each attack the driver writes the mode into the shared directory, asks the broker to restart
the hostile helper (`privsep restart`), waits for the broker's log to say what happened, and
checks:
  up     the broker process is alive and answers `privsep status` on its control socket;
  log    the broker's log has the expected line (a refusal, a protocol error, a kill...);
  fds    /proc/<broker>/fd counts the same once the hostile helper is idle again;
  rss    VmRSS of the broker stays below a fixed cap;
  wit    the witness (a ping and a routed request every 2 ms) got every reply, none failed,
         and kept getting them during the attack.
The witness's median latency during each attack is compared with its baseline from the same
run and printed (ratio; the goal is 2x); the suite fails on it only when HOSTILE_LATENCY_BOUND
is set (a ratio), because this is a shared 2-core machine and timing goals belong in benchmarks.

Usage: run.py [--only MODE,...] [--keep]      (run from the repository root, as root)
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import brokerprobe  # noqa: E402

BIN = os.environ.get("PRIVSEP_BIN", ".build/debug")
RSS_CAP_KIB = 256 * 1024
# Ratio of the witness's median latency during an attack to its baseline beyond which the attack
# fails. The goal is 2x (printed per attack); the bound is generous because this suite runs on
# small shared machines, where a concurrent build alone moves the ratio by 10x or more. By default
# (HOSTILE_LATENCY_BOUND=0) the ratio is reported, not asserted: the hard check is that the
# witness got every reply (none failed or timed out) and was served during the attack.
LATENCY_FAIL = float(os.environ.get("HOSTILE_LATENCY_BOUND", "0"))
ATTACK_TIMEOUT = 20.0
MIN_WINDOW_S = 0.2
SLOW_ATTACKS = {"events": 150.0, "eventsvoid": 150.0}  # 10^6 frames take a while on 2 cores

# Events per flood attack (the issue asks for 10^6; sanitizer builds run it smaller).
EVENTS = int(os.environ.get("HOSTILE_EVENTS", "1000000"))

# mode -> (regex the broker's log must match after the attack starts, description)
ATTACKS = [
    ("len0", r"reason=frame_too_short", "length prefix 0"),
    ("len1", r"reason=frame_too_short", "length prefix 1"),
    ("lenmax", r"length prefix 4294967295 .*reason=frame_too_large", "length prefix 0xFFFFFFFF"),
    ("maxplus1", r"length prefix 16777217 .*reason=frame_too_large", "length max_frame+1"),
    ("slowloris", r"hostile: slowloris: reply after 51 one-byte writes", "prefix+frame one byte per write, 0.7 s pauses"),
    ("truncated", r"stream ended after 10 of 100 .*reason=truncated_frame", "truncated frame, 3 s silence, exit"),
    ("badutf8", r"invalid UTF-8.*reason=invalid_json", "invalid UTF-8 in a string"),
    ("overlong", r"overlong.*reason=invalid_json", "overlong UTF-8"),
    ("surrogate", r"surrogate.*reason=invalid_json", "lone surrogate escape \\ud800"),
    ("rawsurrogate", r"encoded UTF-16 surrogate.*reason=invalid_json", "encoded surrogate bytes ED A0 80"),
    ("deep", r"nesting deeper than 64.*reason=invalid_json", "nesting depth 100000"),
    ("dupkeys", r"duplicate key.*reason=invalid_json", "duplicate key \"id\""),
    ("bigstring", r"string longer than.*reason=invalid_json", "10 MiB string"),
    ("bignumber", r"number longer than.*reason=invalid_json", "number with 10^6 digits"),
    ("unknown", r"refused: .*unknown top-level member 'evil'", "unknown top-level member"),
    ("spoof", r"reason=from_forbidden", "spoofed from"),
    ("badre", r"hostile: badre: 1000 replies .* ping afterwards ok", "1000 replies to ids never issued"),
    ("dupid", r"request id 7 is already in flight.*reason=duplicate_id", "duplicate id in flight"),
    ("events", rf"hostile: events: {EVENTS} hostile.suite.tick events sent", f"{EVENTS} events as fast as possible, to a receiver"),
    ("eventsvoid", rf"hostile: events: {EVENTS} hostile.suite.void events sent", f"{EVENTS} events as fast as possible, no receiver"),
    ("fds253", r"reason=control_truncated", "253 fds in one sendmsg"),
    ("fdsnoframe", r"reason=fds_unclaimed", "fds with no declaring frame"),
    ("fdsmissing", r"reason=fds_missing", "fds: 1 declared, none sent"),
    ("noread", r"killing helper: (?!restart requested)", "requests forever, never reads a reply"),
    ("midframe", r"stream ended after 600 of 1000 .*reason=truncated_frame", "close in the middle of a frame"),
    ("forkbomb", r"hostile: forkbomb: fork failed after \d+ children.*ping ok", "fork until the sandbox stops it"),
    ("exec", r"hostile: exec: su exit", "exec of programs outside and inside the sandbox"),
    ("denied", r"killing helper: \d+ refused messages", "every type it may not send, until max_violations"),
    ("twice", r"dropped a reply to an unknown or finished request", "server replies twice"),
    ("wrongbody", r"hostile: wrongbody: the requester got .*privsep.invalid", "server replies with a body off its schema"),
    ("nohello", r"reason=bad_handshake", "a request before privsep.hello"),
]


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def build(work):
    sh("make", "-s", "-C", "clients/c", stdout=subprocess.DEVNULL)
    flags = ["-O2", "-Wall", "-Wextra", "-Werror"]
    sh("cc", *flags, "-o", f"{work}/hostile", "Tests/Hostile/hostile.c")
    sh("cc", *flags, "-Iclients/c/include", "-o", f"{work}/good", "Tests/Hostile/good.c",
       "clients/c/build/libprivsep.a", "-ljansson")


def config(work, repo):
    small = {"max_frame": 65536, "queue_bytes": 65536, "stall_timeout_ms": 1000,
             "max_violations": 20, "request_timeout_ms": 3000, "hello_timeout_ms": 3000}
    bind = {"ro_bind": [f"{work}/bin:/opt/h"], "bind": [f"{work}/share:/opt/share"]}
    return {
        "description": "hostile-helper suite",
        "schema_dirs": [f"{repo}/Tests/Hostile/schema"],
        "shutdown_grace_ms": 2000,
        # debug: the broker logs dropped replies (to unknown ids) only at this level.
        "log": {"level": "debug"},
        "control_socket": f"{work}/control.sock",
        "helpers": {
            "witness": {"command": ["/opt/h/good", "witness", "/opt/share/witness.log"], "sandbox": bind,
                        "may_send": ["privsep.ping", "hostile.suite.echo"], "restart": {"policy": "never"}},
            "echo": {"command": ["/opt/h/good", "echo"], "sandbox": {"ro_bind": bind["ro_bind"]},
                     "serves": ["hostile.suite.echo"], "restart": {"policy": "never"}},
            "sink": {"command": ["/opt/h/good", "sink"], "sandbox": {"ro_bind": bind["ro_bind"]},
                     "receives": ["hostile.suite.tick"], "restart": {"policy": "never"}},
            "hostile": {"command": ["/opt/h/hostile"],
                        "sandbox": dict(bind, setenv={"HOSTILE_MODE_FILE": "/opt/share/mode"}),
                        "may_send": ["privsep.ping", "hostile.suite.self", "hostile.suite.tick", "hostile.suite.void"],
                        "serves": ["hostile.suite.self"],
                        # max_frame at the top of its range so the parser limits, not the frame
                        # limit, meet the depth/string/number attacks.
                        "limits": dict(small, max_frame=16777216),
                        "restart": {"policy": "on-failure", "backoff_ms": 50, "max_restarts": 1000,
                                    "window_ms": 1000}},
        },
    }


class Broker:
    def __init__(self, work, cfg):
        self.work = work
        self.log_path = f"{work}/broker.log"
        self.control = f"{work}/control.sock"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([f"{BIN}/privsep", "run", cfg, "--log-level", "debug"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def status(self):
        return brokerprobe.status(f"{BIN}/privsep", self.control)

    def restart(self, helper):
        subprocess.run([f"{BIN}/privsep", "restart", "--socket", self.control, helper],
                       capture_output=True, timeout=10, check=True)

    def fds(self):
        return brokerprobe.open_fds(self.pid)

    def rss_kib(self):
        return brokerprobe.rss_kib(self.pid)

    def log_text(self, start=0):
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def log_size(self):
        return os.path.getsize(self.log_path)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def helper_state(broker, name):
    st = broker.status()
    if st is None:
        return None
    for h in st["helpers"]:
        if h["name"] == name:
            return h
    return None


def wait_until(predicate, timeout, step=0.05):
    """Polls a condition the system under test exposes (no other way to observe it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(step)
    return predicate()


def witness_samples(path, t0, t1):
    """(latencies in µs of ok round trips, failures) with end times in [t0, t1) (ns)."""
    ok, bad = [], []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 4:
                    continue
                t = int(parts[0])
                if t0 <= t < t1:
                    if parts[3] == "ok":
                        ok.append(int(parts[2]))
                    else:
                        bad.append(line.strip())
    except FileNotFoundError:
        pass
    return ok, bad


def idle_hostile(broker):
    """Restarts the hostile helper with no mode (idle) and waits until it is ready."""
    mode_file = f"{broker.work}/share/mode"
    if os.path.exists(mode_file):
        os.unlink(mode_file)
    broker.restart("hostile")
    return wait_until(lambda: (helper_state(broker, "hostile") or {}).get("state") == "ready", 10)


def main():
    only = None
    keep = "--keep" in sys.argv
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    if os.geteuid() != 0:
        print("hostile: SKIP (the broker sets uids and namespaces: run as root)")
        return 0
    repo = os.getcwd()
    work = tempfile.mkdtemp(prefix="privsep-hostile.")
    os.chmod(work, 0o755)
    for d in ("bin", "share"):
        os.mkdir(f"{work}/{d}")
    os.chmod(f"{work}/share", 0o777)
    build(f"{work}/bin")
    cfg = f"{work}/config.json"
    with open(cfg, "w") as f:
        json.dump(config(work, repo), f, indent=1)
    broker = Broker(work, cfg)
    witness_log = f"{work}/share/witness.log"
    passed = failed = 0
    ratios = []
    try:
        ready = wait_until(lambda: (st := broker.status()) and all(h["state"] == "ready" for h in st["helpers"]), 20)
        if not ready:
            print("hostile: FAIL: helpers never all ready")
            print(broker.log_text()[-3000:])
            return 1
        # Baseline: the witness alone for 3 s.
        b0 = time.monotonic_ns()
        wait_until(lambda: time.monotonic_ns() - b0 > 3e9, 4, step=0.2)
        base, base_bad = witness_samples(witness_log, b0, time.monotonic_ns())
        base_med = statistics.median(base) if base else 0
        print(f"hostile: baseline: witness {len(base)} round trips in 3 s, median {base_med:.0f} us, "
              f"{len(base_bad)} failures; broker {broker.fds()} fds, {broker.rss_kib()} KiB")
        print(f"{'attack':<13} {'outcome':<5} {'n':>6} {'median_us':>9} {'ratio':>6} {'fds':>9} {'rss_kib':>8}  notes")
        for mode, pattern, what in ATTACKS:
            if only and mode not in only:
                continue
            notes = []
            fd_before = broker.fds()
            log_at = broker.log_size()
            with open(f"{work}/share/mode", "w") as f:
                f.write(mode + (f" {EVENTS}" if mode.startswith("events") else "") + "\n")
            os.chmod(f"{work}/share/mode", 0o666)
            broker.restart("hostile")
            # The witness is measured from the moment the attack starts: the restart before it
            # (the CLI, a new sandbox) is the suite's doing, not the attack's.
            marker = f"hostile: mode {mode} starting"
            wait_until(lambda: marker in broker.log_text(log_at), ATTACK_TIMEOUT, step=0.002)
            t0 = time.monotonic_ns()
            rx = re.compile(pattern)
            peak = [0]

            def attack_logged():
                # VmRSS is sampled on every poll, so the peak during the attack is seen too.
                if broker.alive():
                    peak[0] = max(peak[0], broker.rss_kib())
                return rx.search(broker.log_text(log_at)) is not None

            matched = wait_until(attack_logged, SLOW_ATTACKS.get(mode, ATTACK_TIMEOUT), step=0.1)
            # At least MIN_WINDOW_S of witness samples, so an attack that is over at once is
            # still measured with its aftermath (the kill, the refusals, the log lines).
            left = t0 / 1e9 + MIN_WINDOW_S - time.monotonic()
            if left > 0:
                time.sleep(left)
            peak_rss = peak[0]
            t1 = time.monotonic_ns()
            up = broker.alive() and broker.status() is not None
            if up:
                idle_ok = idle_hostile(broker)
                if not idle_ok:
                    notes.append("hostile not ready again")
                fd_after = wait_until(lambda: broker.fds() == fd_before and fd_before, 3) or broker.fds()
                rss = broker.rss_kib()
            else:
                fd_after, rss = -1, -1
            ok, bad = witness_samples(witness_log, t0, t1)
            med = statistics.median(ok) if ok else float("inf")
            ratio = med / base_med if base_med else float("inf")
            ratios.append((mode, ratio))
            good = True
            if not up:
                good = False
                notes.append("BROKER DOWN")
            if not matched:
                good = False
                notes.append(f"log lacks /{pattern}/")
            if fd_after != fd_before:
                good = False
                notes.append(f"fd leak {fd_before}->{fd_after}")
            if max(rss, peak_rss) > RSS_CAP_KIB:
                good = False
                notes.append(f"rss over cap {RSS_CAP_KIB}")
            if bad:
                good = False
                notes.append(f"witness failures: {bad[:2]}")
            if not ok:
                good = False
                notes.append("witness got no reply during the attack")
            if LATENCY_FAIL > 0 and ratio > LATENCY_FAIL:
                good = False
                notes.append(f"latency ratio > {LATENCY_FAIL}")
            elif ratio > 2.0:
                notes.append("latency over the 2x goal")
            if good:
                passed += 1
            else:
                failed += 1
                tail = broker.log_text(log_at)[-1500:]
                notes.append("log tail:\n    " + tail.replace("\n", "\n    "))
            print(f"{mode:<13} {'pass' if good else 'FAIL':<5} {len(ok):>6} {med:>9.0f} {ratio:>6.2f} "
                  f"{fd_before:>4}->{fd_after:<4} {max(rss, peak_rss):>8}  {what}; {'; '.join(notes)}", flush=True)
            if not up:
                break
        if ratios:
            worst = max(ratios, key=lambda r: r[1])
            over = [m for m, r in ratios if r > 2.0]
            print(f"hostile: latency: {len(over)} of {len(ratios)} attacks over the 2x goal"
                  f"{' (' + ', '.join(over) + ')' if over else ''}; worst {worst[1]:.1f}x ({worst[0]})")
        status = broker.status() or {}
        b = status.get("broker", {})
        print(f"hostile: broker counters: requests {b.get('requests')}, final_replies {b.get('final_replies')}, "
              f"abandoned {b.get('abandoned')}, replies_dropped {b.get('replies_dropped')}, "
              f"errors {json.dumps(b.get('errors'))}")
    finally:
        rc = broker.stop()
        if rc not in (0, None):
            print(f"hostile: broker exit status {rc}")
        if keep:
            print(f"hostile: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"hostile: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
