#!/usr/bin/python3
"""soak (Python, clients/python): the Python side of the soak test (Tests/Soak/run.py).

  soak.py serve                 answers every request with its body
  soak.py request N WINDOW OUT  as soak.c: N requests alternating soak.c and soak.py, at most
                                WINDOW in flight, final replies counted by code, JSON to OUT
"""
import json
import os
import sys

sys.path.insert(0, os.environ.get("PRIVSEP_PYTHON", "/opt/privsep/clients/python"))
import privsep  # noqa: E402


def serve(conn):
    for msg in conn:
        if isinstance(msg, privsep.Message) and msg.kind == "event" and msg.type == "privsep.shutdown":
            break
        if isinstance(msg, privsep.Message) and msg.kind == "request":
            conn.reply(msg, msg.body)
    return 0


def request(conn, total, window, out):
    sent = finals = stray = idle = 0
    codes = {}
    while finals < total:
        while sent < total and sent - finals < window:
            conn.send_request("soak.echo.py" if sent % 2 else "soak.echo.c", {"n": sent})
            sent += 1
        try:
            msg = conn.recv(timeout=1.0)
        except privsep.PrivsepError as exc:
            if exc.fatal:
                break
            idle += 1
            if idle >= 30:
                break
            continue
        idle = 0
        if not isinstance(msg, privsep.Message) or msg.kind != "reply":
            # a refused frame or a stray message: not a reply to count
            stray += 1
            continue
        if not msg.more:
            code = msg.error["code"] if msg.error is not None else "ok"
            codes[code] = codes.get(code, 0) + 1
            finals += 1
    with open(out, "w") as f:
        json.dump({"lang": "python", "sent": sent, "final": finals, "stray": stray, "codes": codes}, f)
        f.write("\n")
    print(f"soak: requester done: sent {sent}, final replies {finals}", file=sys.stderr, flush=True)
    for msg in conn:  # stay connected until the broker stops
        if isinstance(msg, privsep.Message) and msg.kind == "event" and msg.type == "privsep.shutdown":
            break
    return 0


def main():
    with privsep.Connection.from_env() as conn:
        conn.hello(client="soak.py/1")
        if sys.argv[1:2] == ["serve"]:
            return serve(conn)
        return request(conn, int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])


if __name__ == "__main__":
    sys.exit(main())
