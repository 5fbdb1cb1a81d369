#!/usr/bin/env python3
"""Seed corpora for the fuzzers, from the conformance vectors (Tests/Conformance/vectors) and the
repository's schemas and configs. Usage: seeds.py OUTDIR  (writes OUTDIR/<target>/NNNN)."""
import glob
import json
import os
import sys

out = sys.argv[1]
targets = {t: [] for t in ("wire", "json", "schema", "config", "c_decode")}

streams = []
for path in sorted(glob.glob("Tests/Conformance/vectors/*.json")):
    for case in json.load(open(path))["cases"]:
        streams.append(bytes.fromhex(case["input"]))

bodies = []
for s in streams:
    i = 0
    while i + 4 <= len(s):
        n = int.from_bytes(s[i:i + 4], "big")
        body = s[i + 4:i + 4 + n]
        if body:
            bodies.append(body)
        if n < 2:
            break
        i += 4 + n

for s in streams:
    targets["wire"] += [b"\x00" + s, b"\x03" + s, b"\xff" + s]
    targets["c_decode"] += [b"\x01" + s, b"\x07" + s, b"\xff" + s]
for b in bodies:
    targets["json"].append(b)
    targets["wire"].append(b"\xfe" + b)
    targets["c_decode"].append(b"\x00" + b)

schemas = []
for path in sorted(glob.glob("schema/privsep/*.json")) + sorted(glob.glob("Tests/*/schema/*.json")):
    doc = json.load(open(path))
    for msg in doc.get("messages", {}).values():
        for key in ("body", "reply"):
            if isinstance(msg.get(key), dict):
                s = dict(msg[key])
                if "$defs" in doc:
                    s["$defs"] = doc["$defs"]
                schemas.append(json.dumps(s).encode())
# Plain bodies, for the check of a body from its bytes (Schema.checkPlainObject), and a schema
# whose every keyword that check reads sits one byte of the body away from failing.
plain = [b'{"seq":7,"payload":"hello"}', b'{ "a" : 1 , "b" : "x", "c": true, "d": null }', b"{}"]
edges = (b'{"type":"object","required":["s","n"],"minProperties":2,"maxProperties":4,"additionalProperties":false,'
         b'"properties":{"s":{"type":"string","minLength":2,"maxLength":3},"n":{"type":"integer","minimum":-2,'
         b'"exclusiveMaximum":5},"e":{"enum":["ab","c"]},"b":{"type":"boolean"}}}')
schemas.append(edges)
plain += [b'{"s":"abc","n":4}', b'{"s":"ab","n":-2,"e":"c","b":false}']
for i, s in enumerate(schemas):
    for b in (bodies[i % max(1, len(bodies)):][:3] or [b"{}"]) + plain:
        targets["schema"].append(s + b"\x00" + b)
    targets["json"].append(s)

for path in sorted(glob.glob("examples/*/*.json.in")) + sorted(glob.glob("Tests/Conformance/e2e/*.json.in")):
    text = open(path).read().replace("@UIDS@", "[61184, 65519]").replace("@SUBJECT@", '["/bin/true"]')
    for k in ("@REPO@", "@SWIFT_HELPER@", "@ADDER@", "@WORK@"):
        text = text.replace(k, "/opt/x")
    targets["config"].append(text.encode())
targets["config"].append(b'{"helpers":{"a":{"command":["/bin/true"],"limits":{"max_frame":65536},"restart":{"policy":"never"},"sandbox":{"ro_bind":["/srv:/srv"],"rlimits":{"nofile":64}}}}}')

for t, items in targets.items():
    d = os.path.join(out, t)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(items):
        with open(os.path.join(d, f"seed{i:04d}"), "wb") as f:
            f.write(data)
    print(f"seeds: {t}: {len(items)}")
