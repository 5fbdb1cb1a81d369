#!/usr/bin/env python3
"""The scenario helper of tests/fakebroker.py written with privsep.py (also the doc example)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import privsep  # noqa: E402


def main() -> int:
    with privsep.Connection.from_env(timeout=20) as conn:
        conn.hello()
        reply = conn.request("privsep.ping", {"seq": 1})
        assert reply.body == {"seq": 1}, reply

        # What arrived while the ping waited: an event, then a request to serve.
        for msg in conn:
            if msg.kind == "event" and msg.type == "test.notice":
                conn.event("test.seen", {"notice": msg.body["n"]})
            elif msg.kind == "request" and msg.type == "test.echo":
                conn.reply(msg, {"text": msg.body["text"]})
                break

        try:
            conn.request("test.fail")
            return 1
        except privsep.ReplyError as exc:
            conn.event("test.error_seen", {"code": exc.code})

        reply = conn.request("test.getfd")
        with reply.fds[0] as fd, os.fdopen(fd.detach(), "rb") as f:
            conn.event("test.fd_text", {"text": f.read().decode()})

        r, w = os.pipe()
        os.write(w, b"from-helper")
        os.close(w)
        reply = conn.request("test.putfd", {}, fds=[r])
        os.close(r)
        assert reply.body == {"text": "from-helper"}, reply

        conn.log("info", "scenario done")
        conn.request("test.bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
