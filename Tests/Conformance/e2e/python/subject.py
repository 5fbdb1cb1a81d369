#!/usr/bin/env python3
"""The conformance scenario helper written with clients/python/privsep.py.

It plays each scenario against the peer through the broker and prints one line per
scenario on stdout, which the broker logs tagged "subject":

    RESULT <scenario> pass|fail <detail>

The scenarios and their order are the same in every client's subject; see
docs/conformance.md. Every wait is bounded (WAIT seconds).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Optional

sys.path.insert(0, os.environ.get("PRIVSEP_PYTHON", "/opt/privsep/clients/python"))
import privsep  # noqa: E402

WAIT = 5.0
FD_TEXT = "conformance-fd"
PUT_TEXT = "from-subject"
MAX_FRAME = 1024  # the subject's limits.max_frame in the config


def result(scenario: str, ok: bool, detail: str) -> None:
    print(f"RESULT {scenario} {'pass' if ok else 'fail'} {detail}", flush=True)


def scenario(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Runs the scenario; an exception is its failure, reported with the error's code."""
    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                fn(*args)
            except privsep.PrivsepError as exc:
                result(name, False, f"{exc.code} ({exc.reason}): {exc.message}")
            except Exception as exc:  # noqa: BLE001 - any failure is this scenario's
                result(name, False, f"{type(exc).__name__}: {exc}")
        return run
    return wrap


def wait_for(conn: privsep.Connection, want: Callable[[privsep.Message], bool],
             serve: Optional[Callable[[privsep.Message], None]] = None) -> privsep.Message:
    """The next message matching want, serving requests meanwhile; each wait bounded."""
    while True:
        msg = conn.recv(timeout=WAIT)
        if want(msg):
            return msg
        if serve is not None and msg.kind == "request":
            serve(msg)


@scenario("ping")
def ping(conn: privsep.Connection) -> None:
    body = {"seq": 7, "payload": "conformance"}
    reply = conn.request("privsep.ping", body, timeout=WAIT)
    result("ping", reply.body == body, f"echoed seq {reply.body.get('seq')}")


@scenario("request")
def request(conn: privsep.Connection) -> None:
    reply = conn.request("conf.e2e.upper", {"text": "conformance"}, timeout=WAIT)
    text = reply.body.get("text")
    result("request", text == "CONFORMANCE" and reply.sender == "peer", f"text {text} from {reply.sender}")


@scenario("serve")
def serve(conn: privsep.Connection) -> None:
    conn.request("conf.e2e.call_me", {}, timeout=WAIT)
    served = []

    def answer(msg: privsep.Message) -> None:
        if msg.type == "conf.e2e.echo":
            conn.reply(msg, {"nonce": msg.body.get("nonce")})
            served.append(msg.sender)

    verdict = wait_for(conn, lambda m: m.kind == "event" and m.type == "conf.e2e.verdict", answer)
    result("serve", bool(served) and verdict.body.get("ok") is True,
           f"peer: {verdict.body.get('detail')}")


@scenario("event-send")
def event_send(conn: privsep.Connection) -> None:
    conn.event("conf.e2e.note", {"n": 42})
    notes = conn.request("conf.e2e.seen", {}, timeout=WAIT).body.get("notes")
    result("event-send", notes == [42], f"peer saw {notes}")


@scenario("event-recv")
def event_recv(conn: privsep.Connection) -> None:
    notice = wait_for(conn, lambda m: m.kind == "event" and m.type == "conf.e2e.notice")
    n = notice.body.get("n")
    result("event-recv", n == 43 and notice.sender == "peer", f"conf.e2e.notice n={n} from {notice.sender}")


@scenario("error")
def error(conn: privsep.Connection) -> None:
    try:
        conn.request("conf.e2e.fail", {}, timeout=WAIT)
        result("error", False, "conf.e2e.fail succeeded")
    except privsep.ReplyError as exc:
        why = exc.data.get("why") if isinstance(exc.data, dict) else None
        result("error", exc.code == "conf.e2e.failed" and why == "asked to", f"code {exc.code}, data.why {why}")


@scenario("denied")
def denied(conn: privsep.Connection) -> None:
    try:
        conn.request("conf.e2e.secret", {}, timeout=WAIT)
        result("denied", False, "conf.e2e.secret succeeded")
    except privsep.ReplyError as exc:
        result("denied", exc.code == "privsep.denied", f"code {exc.code}")


@scenario("invalid")
def invalid(conn: privsep.Connection) -> None:
    reply = conn.request("conf.e2e.upper", {"text": 5}, timeout=WAIT, check=False)
    err = reply.error or {}
    errors = (err.get("data") or {}).get("errors") or []
    where = [e.get("instanceLocation") for e in errors if isinstance(e, dict)]
    result("invalid", err.get("code") == "privsep.invalid" and "/text" in where,
           f"code {err.get('code')} at {','.join(map(str, where)) or '(none)'}")


@scenario("too-large")
def too_large(conn: privsep.Connection) -> None:
    try:
        conn.request("privsep.ping", {"seq": 8, "payload": "x" * (2 * MAX_FRAME)}, timeout=WAIT)
        result("too-large", False, f"a frame over max_frame {MAX_FRAME} was sent")
        return
    except privsep.PrivsepError as exc:
        if exc.code != "privsep.too_large" or exc.fatal:
            result("too-large", False, f"{exc.code} ({exc.reason}), fatal {exc.fatal}")
            return
        refused = f"{exc.code} ({exc.reason})"
    reply = conn.request("privsep.ping", {"seq": 9}, timeout=WAIT)
    result("too-large", reply.body.get("seq") == 9, f"refused locally: {refused}; the next ping went through")


@scenario("fd-recv")
def fd_recv(conn: privsep.Connection) -> None:
    reply = conn.request("conf.e2e.getfd", {}, timeout=WAIT)
    if len(reply.fds) != 1:
        result("fd-recv", False, f"reply with {len(reply.fds)} fds")
        return
    with os.fdopen(reply.fds[0].detach(), "rb") as f:  # the peer wrote and closed it
        text = f.read(64).decode()
    result("fd-recv", text == FD_TEXT, f'read "{text}"')


@scenario("fd-send")
def fd_send(conn: privsep.Connection) -> None:
    r, w = os.pipe()
    os.write(w, PUT_TEXT.encode())
    os.close(w)
    try:
        reply = conn.request("conf.e2e.putfd", {}, fds=[r], timeout=WAIT)
    finally:
        os.close(r)
    text = reply.body.get("text")
    result("fd-send", text == PUT_TEXT, f'peer read "{text}"')


def main() -> int:
    try:
        conn = privsep.Connection.from_env(timeout=WAIT)
        hello = conn.hello(client="conformance-python/1")
    except privsep.PrivsepError as exc:
        result("hello", False, f"{exc.code} ({exc.reason}): {exc.message}")
        return 1
    ok = (hello.get("helper") == "subject" and hello.get("protocol") == 1
          and hello.get("max_frame") == MAX_FRAME
          and "conf.e2e.echo" in hello.get("serves", []) and "conf.e2e.notice" in hello.get("receives", [])
          and "conf.e2e.upper" in hello.get("may_send", []))
    result("hello", ok, f"helper {hello.get('helper')}, max_frame {hello.get('max_frame')}")
    with conn:
        for step in (ping, request, serve, event_send, event_recv, error, denied, invalid, too_large,
                     fd_recv, fd_send):
            step(conn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
