#!/usr/bin/env python3
"""The `make bench` table: reads the benchmarks' JSON lines, prints one table, writes it as JSON.

Usage: report.py LINES OUT.json [FAILED-BENCH/PLACEMENT...]

Every figure of issue 10 appears: one a benchmark did not report (its run failed, or the
feature does not exist yet) is a row saying so, never silently missing. Stdlib only.
"""

import json
import sys
import time

# Figures every run must show (prefix of the "figure" field) and what to say when absent.
EXPECTED = [
    ("JSON parse of the 120-byte message vs jansson", "json", "<= 0.333x (3x faster)"),
    ("schema validation (valid) vs python jsonschema", "schema", "<= 0.01x (100x faster)"),
    ("privsep.ping round trip (C client) vs raw", "broker", "<= 1.3x"),
    ("routed request helper->broker->helper (C client) vs raw", "broker", "<= 2.3x"),
    ("routed one-way events, validated, pipelined", "broker", ">= 300000"),
    ("routed one-way events vs raw one-way", "broker", ">= 0.3x"),
    ("file.open round trip with fd vs raw SCM_RIGHTS ping-pong", "broker", "<= 1.5x"),
    ("spawn to handshake, per helper of 100: privsep (filter precompiled, as the broker starts helpers) vs bwrap with the same seccomp filter",
     "spawn", "<= 1.0x"),
    ("broker RSS, 100 idle helpers", "broker", "<= 20"),
    ("broker peak RSS, 100 helpers under load", "broker", "<= 40"),
]
# How the broker scales (no limit, reported): one helper pinging with k-1 idle, RSS with k up.
for k in (1, 10, 100, 500):
    EXPECTED.append(("scale %d helpers: privsep.ping round trip (C client)" % k, "broker", ""))
    if k != 100:    # its RSS is "broker RSS, 100 idle helpers"
        EXPECTED.append(("scale %d helpers: broker RSS" % k, "broker", ""))
# The floor (broker/bench.py): a zero-work C relay vs raw, then ours vs the floor; no limits.
for floor, ours in (("zero-work C relay ping vs raw ping-pong", "privsep.ping (%s) vs zero-work C relay"),
                    ("zero-work C relay routed request vs raw ping-pong", "routed request (%s) vs zero-work C relay"),
                    ("zero-work C relay one-way vs raw one-way", None),
                    ("zero-work C relay open + fd vs raw SCM_RIGHTS ping-pong",
                     "file.open (%s) vs zero-work C relay open + fd")):
    EXPECTED.append((floor, "broker", ""))
    if ours is None:
        EXPECTED.append(("routed one-way events vs zero-work C relay", "broker", ""))
        continue
    for variant in ("C client", "raw frames"):
        EXPECTED.append((ours % variant, "broker", ""))
PLACEMENTS = ["same-cpu", "free"]


def number(value, unit):
    if value is None:
        return "n/a"
    if unit == "msg/s":
        return "{:,.0f}".format(value)
    if value >= 100000:
        return "{:,.0f}".format(value)
    return "{:.1f}".format(value) if value >= 10 else "{:.2f}".format(value)


def main():
    lines_path, out_path, failed = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows = []
    with open(lines_path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                # One benchmark's broken line must not cost the whole table: its figure shows as
                # not reported.
                sys.stderr.write("report: %s:%d: not JSON (%s), skipped: %s\n" % (lines_path, lineno, e, line[:200]))
    for figure, bench, goal in EXPECTED:
        for placement in PLACEMENTS:
            if any(r["figure"] == figure and r["placement"] == placement for r in rows):
                continue
            why = "n/a (%s run failed)" % bench if "%s/%s" % (bench, placement) in failed else "n/a (not reported)"
            rows.append({"figure": figure, "placement": placement, "ours": None, "baseline": None,
                         "unit": "", "ratio": None, "goal": goal, "met": None, "note": why})

    header = ("figure", "placement", "ours [min..max]", "baseline", "ratio", "goal", "met")
    table = []
    for r in rows:
        unit = r.get("unit", "")
        if r.get("ours") is None:
            ours = r.get("note", "n/a")
        else:
            ours = "%s %s" % (number(r["ours"], unit), unit)
            if r.get("min") is not None and r.get("max") is not None and r.get("reps", 1) > 1:
                ours += " [%s..%s]" % (number(r["min"], unit), number(r["max"], unit))
        baseline = "-" if r.get("baseline") is None else "%s %s" % (number(r["baseline"], unit), unit)
        ratio = "-" if r.get("ratio") is None else ("%.3gx" % r["ratio"] if r["ratio"] < 1000 else "%.0fx" % r["ratio"])
        goal = r.get("goal") or ""
        if not (goal.startswith("<=") or goal.startswith(">=")):
            r["met"] = None    # a figure reported without a limit meets nothing
        met = {True: "yes", False: "NO", None: "-"}[r.get("met")]
        table.append((r["figure"], r["placement"], ours, baseline, ratio, r.get("goal") or "-", met))
    widths = [max(len(row[i]) for row in table + [header]) for i in range(len(header))]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    goals = [r for r in rows if r.get("met") is not None]
    print("\ngoals met: %d of %d measured; %d figure(s) not measured%s" % (
        sum(1 for r in goals if r["met"]), len(goals),
        sum(1 for r in rows if r.get("ours") is None),
        "; failed runs: " + " ".join(failed) if failed else ""))
    with open(out_path, "w") as f:
        json.dump({"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "failed": failed,
                   "figures": rows}, f, indent=1)
        f.write("\n")
    print("written: %s" % out_path)


if __name__ == "__main__":
    main()
