#!/usr/bin/env python3
"""The Python pinger of the client benchmark: privsep.ping round trips with clients/python."""

import os
import sys
import time

sys.path.insert(0, os.environ.get("PRIVSEP_PYTHON", "/opt/privsep/clients/python"))
import privsep  # noqa: E402

TURN_WAIT = 600.0  # seconds: the others' turns come first


def main() -> int:
    with privsep.Connection.from_env(timeout=TURN_WAIT) as conn:
        conn.hello(client="bench-python/1")
        while True:
            turn = conn.request("bench.clients.turn", {}).body
            if turn.get("stop"):
                return 0
            rounds = turn["rounds"]
            start = time.monotonic_ns()
            for seq in range(1, rounds + 1):
                conn.request("privsep.ping", {"seq": seq})
            elapsed = time.monotonic_ns() - start
            conn.request("bench.clients.done", {"client": "python", "rounds": rounds, "ns": elapsed})


if __name__ == "__main__":
    sys.exit(main())
