#!/usr/bin/env python3
"""Broker benchmarks: raw socketpair baselines and the floor (a zero-work C relay) beside the
real release broker, same run.

Usage: bench.py WORKDIR PRIVSEP BROKERBENCH PLACEMENT

WORKDIR holds the built brokerbench binary (bound read-only into every helper). PLACEMENT is
"same-cpu" (the caller runs us under `taskset -c 0`; the broker and its helpers inherit it) or
"free". Prints a table; when BENCH_OUT names a file, appends one JSON object per figure
(the convention in Tests/Benchmarks/run.sh). Stdlib only.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time

WORK, PRIVSEP, BINARY, PLACEMENT = sys.argv[1:5]
REPS = int(os.environ.get("BENCH_REPS", "5"))
RTT_N = int(os.environ.get("BENCH_RTT_N", "4000"))
EVENTS_N = int(os.environ.get("BENCH_EVENTS_N", "40000"))
# The points; schema/config.schema.json allows up to 1024 helpers.
SCALE = [int(k) for k in os.environ.get("BENCH_SCALE", "1,10,100,500").split(",") if k]
LOAD_N = int(os.environ.get("BENCH_LOAD_N", "2000"))
BENCH_OUT = os.environ.get("BENCH_OUT")
HELPER_BIN = "/opt/bench/brokerbench"
CPUS = sorted(os.sched_getaffinity(0))
TIMEOUT = 180.0
records = []


def pinned(cpu):
    """A preexec_fn that puts the child on `cpu` (None: leaves it where it is)."""
    return None if cpu is None else lambda: os.sched_setaffinity(0, {cpu})


def raw(mode, n, *args, env=None, cpu=None):
    """Runs a raw baseline or a floor (brokerbench raw-* or floor-*); returns the per-rep values.
    env: variables to add to the environment (FLOOR_AUDIT, FLOOR_RELAY_CPU); cpu: where it runs."""
    out = subprocess.run([BINARY, mode, str(n), str(REPS)] + list(args), check=True, capture_output=True,
                         text=True, env=dict(os.environ, **(env or {})), preexec_fn=pinned(cpu)).stdout
    return [float(line.split()[3]) for line in out.splitlines() if line.startswith("BENCH ")]


def helper(argv, serves=(), may_send=(), receives=(), files=()):
    config = {
        "command": [HELPER_BIN] + [str(a) for a in argv],
        "sandbox": {"ro_bind": [WORK + ":/opt/bench"]},
        "serves": list(serves),
        "may_send": list(may_send),
        "receives": list(receives),
        "restart": {"policy": "never"},
        # A 100-helper run starts every helper at once; the default hello bound is for one.
        # The figures are throughputs: no max_rate (its default would cap them at 20 000/s).
        "limits": {"hello_timeout_ms": 120000, "max_rate": 0},
    }
    if files:
        config["files"] = list(files)
    return config


class BrokerFailed(Exception):
    pass


class Broker:
    """One `privsep run` with a generated config; its JSON log read line by line.

    The log goes to a file that this process polls, as a log file or journald would take it,
    not to a pipe it reads: a pipe reader wakes for every line the broker writes (an audit
    line per file.open), and in the same-cpu placement each wakeup is two context switches
    on the measured CPU, charged to the broker's figure."""

    def __init__(self, name, helpers, cpu=None):
        self.config = os.path.join(WORK, name + ".json")
        with open(self.config, "w") as f:
            json.dump({"schema_dirs": [os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")],
                       "shutdown_grace_ms": 2000, "log": {"level": "info", "format": "json"},
                       "helpers": helpers}, f)
        self.log_path = os.path.join(WORK, name + ".log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([PRIVSEP, "run", self.config, "--log-format", "json"],
                                         stderr=log, stdout=subprocess.DEVNULL, preexec_fn=pinned(cpu))
        self.log = open(self.log_path)
        self.partial = ""
        self.results = {}   # figure -> [values]
        self.done = set()   # helper names that printed "BENCH ... done"
        self.log_tail = []

    def wait_done(self, count):
        """Reads the log until `count` helpers said done; fails on a broker exit or timeout."""
        self.read_until(lambda: len(self.done) >= count)

    def wait_results(self, figure, count):
        """Reads the log until `figure` has `count` results."""
        self.read_until(lambda: len(self.results.get(figure, [])) >= count)

    def read_until(self, reached):
        deadline = time.monotonic() + TIMEOUT
        while not reached():
            if time.monotonic() > deadline:
                self.fail("timed out")
            line = self.next_line()
            if line is None:
                continue
            self.log_tail = (self.log_tail + [line.rstrip()])[-20:]
            # Most lines are the broker's own (an audit line per file.open): skip them unparsed,
            # this process shares the CPU with the broker in the same-cpu placement.
            if "BENCH " not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            message = entry.get("message", "")
            if not message.startswith("BENCH "):
                continue
            words = message.split()
            if words[2] == "done":
                self.done.add(entry.get("helper"))
            elif len(words) == 4:
                self.results.setdefault(words[1], []).append(float(words[3]))

    def next_line(self):
        """The next whole line of the log; None after a pause of 20 ms when there is none yet."""
        chunk = self.log.readline()
        if chunk.endswith("\n"):
            line, self.partial = self.partial + chunk, ""
            return line
        self.partial += chunk
        if self.proc.poll() is not None:
            self.fail("broker exited")
        time.sleep(0.02)
        return None

    def status(self, key):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0   # kB -> MiB
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def fail(self, why):
        self.proc.kill()
        self.proc.wait()
        self.log_tail = (self.log_tail + [line.rstrip() for line in self.log])[-20:]
        sys.stderr.write("broker bench: %s (%s); last log lines:\n%s\n" % (why, self.config, "\n".join(self.log_tail)))
        raise BrokerFailed(why)


def run(name, helpers, count):
    broker = Broker(name, helpers)
    broker.wait_done(count)
    broker.stop()
    return broker.results


def record(figure, unit, ours, baseline, goal):
    """ours, baseline: lists of per-rep values (baseline may be None); goal: "<= 1.3x", ">= 300000"."""
    med = statistics.median(ours)
    rec = {"figure": figure, "placement": PLACEMENT, "ours": round(med, 2), "unit": unit,
           "min": round(min(ours), 2), "max": round(max(ours), 2), "reps": len(ours)}
    if baseline:
        base = statistics.median(baseline)
        rec["baseline"] = round(base, 2)
        rec["ratio"] = round(med / base, 3)
    rec["goal"] = goal
    if goal:
        limit_ratio = goal.endswith("x")
        limit = float(goal.split()[1].rstrip("x").replace(",", ""))
        value = rec.get("ratio") if limit_ratio else med
        rec["met"] = value is not None and (value <= limit if goal.startswith("<=") else value >= limit)
    records.append(rec)


# The zero-work C relay (brokerbench floor-*): what any broker costs here, a third process with
# an epoll_wait, a recvmsg and a sendmsg per wakeup and no JSON. Each broker figure gets it and
# the raw baseline measured around it, in its placement; the rows say how far the floor is
# from raw (physical) and how far we are from the floor (ours). No goals: informational.
VARIANTS = {"lib": "C client", "tree": "C client, json_t body", "raw": "raw frames"}


def around(raw_mode, floor_mode, n, figure, floor_args=()):
    """Runs figure() between two raw baselines, the floor measured before it: returns the
    figure's result, the baseline reps of both sides pooled, and the floor's reps. On a shared
    machine the load drifts within a run, and one baseline beside a figure can catch a quieter
    or busier moment than the figure (the same descriptor ping-pong once took 21.3, 26.9 and
    22.7 us in one run)."""
    before, floor = raw(raw_mode, n), raw(floor_mode, n, *floor_args)
    result = figure()
    return result, before + raw(raw_mode, n), floor


def record_floor(floor_figure, unit, measured):
    """measured: [(figure vs the floor, ours, raw values, floor values)] of one family. One row for
    the floor vs raw (every floor run of the family), then one per broker figure vs its floor."""
    record(floor_figure, unit, [v for m in measured for v in m[3]], [v for m in measured for v in m[2]], "")
    for figure, ours, _, floor in measured:
        record(figure, unit, ours, floor, "")


def routed_helpers(variant, reps=REPS):
    """The routed request's two helpers: a client sending bench.broker.echo, a server answering."""
    return {"client": helper(["routed", RTT_N, reps, variant], may_send=["bench.broker.echo"]),
            "server": helper(["server", variant], serves=["bench.broker.echo"])}


def routed_middle_alone(near, far):
    """The routed request with the middle process alone on CPU `far` and both ends on `near`,
    for the relay and for the broker. Left free, the scheduler places three processes on two
    CPUs as it likes, and the routed figure follows the layout: in this one every hop is a
    wakeup across CPUs, and it is where the scheduler kept the broker's processes for most of
    a free run (docs/performance.md, thirteenth round). Informational rows, no goals. The
    broker's helpers inherit `near` when it starts them; the broker moves to `far` once the
    first result shows them up, and the two results that may straddle the move are dropped."""
    before = raw("raw-rtt", RTT_N)
    floor = raw("floor-routed", RTT_N, env={"FLOOR_RELAY_CPU": str(far)}, cpu=near)
    broker = Broker("routed-alone", routed_helpers("lib", REPS + 2), cpu=near)
    broker.wait_results("routed-lib", 1)
    for thread in os.listdir("/proc/%d/task" % broker.proc.pid):
        os.sched_setaffinity(int(thread), {far})
    broker.wait_done(1)
    broker.stop()
    ours = broker.results["routed-lib"][2:]
    base = before + raw("raw-rtt", RTT_N)
    record("routed, zero-work C relay alone on a CPU, vs raw ping-pong", "ns", floor, base, "")
    record("routed (C client), broker alone on a CPU, vs raw", "ns", ours, base, "")
    record("routed (C client), broker alone on a CPU, vs relay alone", "ns", ours, floor, "")


def main():
    base_rtt = raw("raw-rtt", RTT_N)
    base_fd = raw("raw-fd", RTT_N)
    base_oneway = raw("raw-oneway", EVENTS_N)
    record("raw socketpair ping-pong, 120-byte frames", "ns", base_rtt, None, "")
    record("raw ping-pong with one SCM_RIGHTS fd each way", "ns", base_fd, None, "")
    record("raw one-way per-frame writes", "msg/s", base_oneway, None, "")

    # Each broker figure is compared with a baseline measured just before and just after it,
    # in the same placement: on a shared machine the load drifts within a run.
    measured = []
    # "lib" packs each body straight into the frame (privsep_request_pack), the C client's fast
    # way; "tree" builds each as a json_t with json_pack and sends it with privsep_request.
    for variant, figure, goal in (("lib", "privsep.ping round trip (C client) vs raw", "<= 1.3x"),
                                  ("tree", "privsep.ping round trip (C client, json_t body) vs raw", ""),
                                  ("raw", "privsep.ping round trip (raw frames, broker only) vs raw", "")):
        res, base, floor = around("raw-rtt", "floor-rtt", RTT_N, lambda: run(
            "ping-" + variant, {"ping": helper(["ping", RTT_N, REPS, variant], may_send=["privsep.ping"])}, 1))
        record(figure, "ns", res["ping-" + variant], base, goal)
        measured.append(("privsep.ping (%s) vs zero-work C relay" % VARIANTS[variant], res["ping-" + variant],
                         base, floor))
    record_floor("zero-work C relay ping vs raw ping-pong", "ns", measured)

    measured = []
    for variant, figure in (("lib", "routed request helper->broker->helper (C client) vs raw"),
                            ("raw", "routed request (raw frames, broker only) vs raw")):
        res, base, floor = around("raw-rtt", "floor-routed", RTT_N, lambda: run(
            "routed-" + variant, routed_helpers(variant), 1))
        record(figure, "ns", res["routed-" + variant], base, "<= 2.3x")
        measured.append(("routed request (%s) vs zero-work C relay" % VARIANTS[variant], res["routed-" + variant],
                         base, floor))
    record_floor("zero-work C relay routed request vs raw ping-pong", "ns", measured)
    if PLACEMENT == "free" and len(CPUS) >= 2:
        routed_middle_alone(CPUS[0], CPUS[1])

    # msg/s: these ratios are better the higher they are.
    res, base, floor = around("raw-oneway", "floor-oneway", EVENTS_N, lambda: run("events", {
        "client": helper(["events", EVENTS_N, REPS], may_send=["bench.broker.tick", "bench.broker.echo"]),
        "server": helper(["server", "raw"], serves=["bench.broker.echo"], receives=["bench.broker.tick"])}, 1))
    record("routed one-way events, validated, pipelined", "msg/s", res["events"], None, ">= 300000")
    record("routed one-way events vs raw one-way", "msg/s", res["events"], base, ">= 0.3x")
    record_floor("zero-work C relay one-way vs raw one-way", "msg/s",
                 [("routed one-way events vs zero-work C relay", res["events"], base, floor)])

    # privsep.file.open of a small file the helper's `files` rule allows, for reading: the
    # descriptor comes with the reply and the helper closes it. The broker logs one audit line
    # per grant (level info), as it does by default; that is part of the figure.
    data = os.path.join(WORK, "data")
    os.makedirs(data, exist_ok=True)
    small = os.path.join(data, "small.txt")
    with open(small, "w") as f:
        f.write("x" * 119 + "\n")
    rule = [{"path": small, "access": ["read"]}]
    measured = []
    for variant, figure, goal in (
            ("lib", "file.open round trip with fd vs raw SCM_RIGHTS ping-pong", "<= 1.5x"),
            ("raw", "file.open round trip (raw frames, broker only) vs raw SCM_RIGHTS", "")):
        # The floor opens the same file for each request and sends one descriptor back; raw-fd
        # sends one each way and opens nothing.
        res, base, floor = around("raw-fd", "floor-fd", RTT_N, lambda: run("fileopen-" + variant, {
            "files": helper(["fileopen", RTT_N, REPS, variant, small], may_send=["privsep.file.open"],
                            files=rule)}, 1), floor_args=(small,))
        record(figure, "ns", res["fileopen-" + variant], base, goal)
        measured.append(("file.open (%s) vs zero-work C relay open + fd" % VARIANTS[variant],
                         res["fileopen-" + variant], base, floor))
    record_floor("zero-work C relay open + fd vs raw SCM_RIGHTS ping-pong", "ns", measured)
    # The relay again, making the system calls privsep makes per file.open instead of one open:
    # openat2 beneath the rule's directory, fstat, fcntl and the audit line's write. What the
    # operation itself costs here, before any of the broker's own work.
    audited = raw("floor-fd", RTT_N, small, env={"FLOOR_AUDIT": os.path.join(WORK, "floor-audit.log")})
    record("zero-work C relay with file.open's system calls vs raw SCM_RIGHTS ping-pong", "ns", audited,
           [v for _, _, base, _ in measured for v in base], "")
    for figure, ours, _, _ in measured:
        record(figure.replace("open + fd", "with file.open's system calls"), "ns", ours, audited, "")

    # Scale: k helpers connected (k-1 idle), one pinging through the C client; RSS once all are up.
    for k in SCALE:
        helpers = {"idle%d" % i: helper(["idle"]) for i in range(k - 1)}
        helpers["ping"] = helper(["ping", RTT_N, REPS, "lib"], may_send=["privsep.ping"])
        base = raw("raw-rtt", RTT_N)
        broker = Broker("scale-%d" % k, helpers)
        t0 = time.monotonic()
        broker.wait_done(k)
        rss = broker.status("VmRSS")
        broker.stop()
        record("scale %d helpers: privsep.ping round trip (C client)" % k, "ns", broker.results["ping-lib"], base, "")
        records.append({"figure": "scale %d helpers: broker RSS" % k, "placement": PLACEMENT,
                        "ours": round(rss, 2), "unit": "MiB", "min": round(rss, 2), "max": round(rss, 2),
                        "reps": 1, "goal": "<= 20" if k == 100 else "",
                        "met": (rss <= 20) if k == 100 else None,
                        "note": "all up in %.1f s" % (time.monotonic() - t0)})
        if k == 100:
            records[-1]["figure"] = "broker RSS, 100 idle helpers"

    # Load: 100 helpers pinging at once; peak RSS of the broker.
    helpers = {"load%d" % i: helper(["load", LOAD_N], may_send=["privsep.ping"]) for i in range(100)}
    broker = Broker("load", helpers)
    broker.wait_done(100)
    hwm = broker.status("VmHWM")
    broker.stop()
    rates = broker.results.get("load", [])
    records.append({"figure": "broker peak RSS, 100 helpers under load", "placement": PLACEMENT,
                    "ours": round(hwm, 2), "unit": "MiB", "min": round(hwm, 2), "max": round(hwm, 2), "reps": 1,
                    "goal": "<= 40", "met": hwm <= 40,
                    "note": "100 x %d pings, median %.1f us per round trip per helper" % (
                        LOAD_N, statistics.median(rates) / 1000 if rates else float("nan"))})



def report():
    print("broker benchmarks, placement %s, %d reps (median [min..max])" % (PLACEMENT, REPS))
    for r in records:
        ours = "n/a" if r.get("ours") is None else "%.1f [%.1f..%.1f] %s" % (r["ours"], r.get("min", r["ours"]), r.get("max", r["ours"]), r["unit"])
        extra = ""
        if r.get("ratio") is not None:
            extra = " ratio %.2fx vs %.1f" % (r["ratio"], r["baseline"])
        if r.get("goal"):
            extra += " goal %s %s" % (r["goal"], {True: "met", False: "NOT met", None: ""}[r.get("met")])
        if r.get("note"):
            extra += " (%s)" % r["note"]
        print("  %-62s %s%s" % (r["figure"], ours, extra))
    if BENCH_OUT:
        with open(BENCH_OUT, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    failed = False
    try:
        main()
    except (BrokerFailed, subprocess.CalledProcessError, KeyError) as e:
        sys.stderr.write("broker bench: stopped early: %r\n" % (e,))
        failed = True
    report()
    sys.exit(1 if failed else 0)
