#!/usr/bin/env python3
"""A scripted stand-in for the broker, to test each client's helper without `privsep run`.

It spawns the helper with its end of a socketpair as fd 3 (PRIVSEP_FD=3, PRIVSEP_HELPER,
PRIVSEP_PROTOCOL=1), plays one fixed scenario and checks every frame the helper sends.
Framing here is written independently of clients/python/privsep.py on purpose: a client
is never tested only against itself.

    fakebroker.py [--no-fds] [--label NAME] [--scenario full|doc] -- helper-command args...

Scenario (the helper side is in clients/*/tests/scenario*):
  hello       helper: request privsep.hello      broker: reply with max_frame 65536
  ping        helper: request privsep.ping        broker: event test.notice, request
                                                  test.echo (id 1000), then the ping reply
  event-in    helper: event test.seen {notice:1}  (it got test.notice)
  serve       helper: reply re 1000 {text:"hi"}   (it served test.echo)
  error       helper: request test.fail           broker: error privsep.not_found
  error-seen  helper: event test.error_seen {code:"privsep.not_found"}
  fd-in       helper: request test.getfd          broker: reply with a pipe (fds: 1)
  fd-in-read  helper: event test.fd_text {text}   (what it read from that pipe)
  fd-out      helper: request test.putfd (fds: 1) broker: reads it, replies {text}
  log         helper: event privsep.log
  bye         helper: request test.bye            broker: reply, then the helper exits 0
--no-fds skips fd-in, fd-in-read and fd-out (the shell client cannot pass fds).

Scenario "doc" (the minimal helper of docs/client-*.md):
  hello, ping, then the broker sends request demo.upper {text:"abc"} (reply {text:"ABC"}),
  request demo.nope (error reply privsep.unknown_type), and the event privsep.shutdown: the
  helper exits 0.
Prints one line per step and "N passed, N failed"; exits 0 when all passed.
"""

from __future__ import annotations

import array
import json
import os
import re
import socket
import sys
from typing import Any, Dict, List, Optional, Tuple

TIMEOUT = 20.0  # a bound on every wait, not a synchronisation
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MEMBERS = {"type", "id", "re", "body", "error", "more", "fds"}
FD_TEXT = "fd-content\n"
LOG_LEVELS = ("trace", "debug", "info", "notice", "warning", "error", "critical")


class Broken(Exception):
    pass


class Peer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.fds: List[int] = []

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            data, anc, flags, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(payload[:len(payload) - len(payload) % 4])
                    self.fds.extend(a)
            if flags & socket.MSG_CTRUNC:
                raise Broken("helper sent more fds than a frame may carry")
            if not data:
                raise Broken(f"helper closed the connection ({len(self.buf)} bytes pending)")
            self.buf += data

    def read(self) -> Tuple[Dict[str, Any], List[int]]:
        """One frame, checked as the broker would check a helper's frame."""
        self._fill(4)
        n = int.from_bytes(self.buf[:4], "big")
        if not 2 <= n <= 65536:
            raise Broken(f"frame length {n} outside 2..65536")
        self._fill(4 + n)
        body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]

        def pairs(items: List[Tuple[str, Any]]) -> Dict[str, Any]:
            keys = [k for k, _ in items]
            if len(keys) != len(set(keys)):
                raise Broken(f"duplicate key in {body!r}")
            return dict(items)
        env = json.loads(body.decode("utf-8"), object_pairs_hook=pairs)
        if not isinstance(env, dict):
            raise Broken(f"frame is not an object: {body!r}")
        unknown = set(env) - MEMBERS
        if unknown:
            raise Broken(f"unknown or forbidden members {sorted(unknown)} in {body!r}")
        if "type" in env and not TYPE_RE.match(env["type"]):
            raise Broken(f"bad type in {body!r}")
        for key in ("id", "re"):
            if key in env and (type(env[key]) is not int or not 1 <= env[key] <= 2**53 - 1):
                raise Broken(f"bad {key} in {body!r}")
        if "body" in env and not isinstance(env["body"], dict):
            raise Broken(f"body is not an object in {body!r}")
        k = env.get("fds", 0)
        fds, self.fds = self.fds[:k], self.fds[k:]
        if len(fds) != k:
            raise Broken(f"frame declares {k} fds, {len(fds)} arrived")
        if self.fds and not self.buf:
            # every byte received is framed, yet fds remain: no frame declared them
            raise Broken(f"{len(self.fds)} fds arrived that no frame declared")
        return env, fds

    def write(self, env: Dict[str, Any], fds: Optional[List[int]] = None) -> None:
        data = json.dumps(env, separators=(",", ":")).encode()
        frame = len(data).to_bytes(4, "big") + data
        if fds:
            socket.send_fds(self.sock, [frame], fds)
        else:
            self.sock.sendall(frame)


def expect_request(peer: Peer, type_: str) -> Tuple[Dict[str, Any], List[int]]:
    env, fds = peer.read()
    if env.get("type") != type_ or "id" not in env:
        raise Broken(f"expected request {type_}, got {env}")
    return env, fds


def expect_event(peer: Peer, type_: str) -> Dict[str, Any]:
    env, _ = peer.read()
    if env.get("type") != type_ or "id" in env or "re" in env:
        raise Broken(f"expected event {type_}, got {env}")
    body: Dict[str, Any] = env.get("body", {})
    return body


def steps(peer: Peer, name: str, with_fds: bool):  # type: ignore[no-untyped-def]
    """Yields (step, None) on success; raises Broken on the first deviation."""
    env, _ = expect_request(peer, "privsep.hello")
    body = env.get("body", {})
    if body.get("protocol") != 1 or not isinstance(body.get("client"), str):
        raise Broken(f"hello body {body}")
    peer.write({"re": env["id"], "from": "broker", "body": {
        "helper": name, "protocol": 1, "max_frame": 65536,
        "may_send": ["privsep.ping", "privsep.log", "test.fail", "test.getfd", "test.putfd", "test.bye",
                     "test.seen", "test.error_seen", "test.fd_text"], "serves": ["test.echo"], "receives": ["test.notice"]}})
    yield "hello"

    env, _ = expect_request(peer, "privsep.ping")
    # While the helper waits for this reply, other traffic arrives first.
    peer.write({"type": "test.notice", "from": "broker", "body": {"n": 1}})
    peer.write({"type": "test.echo", "id": 1000, "from": "peer", "body": {"text": "hi"}})
    peer.write({"re": env["id"], "from": "broker", "body": env.get("body", {})})
    yield "ping"

    seen = expect_event(peer, "test.seen")
    if seen != {"notice": 1}:
        raise Broken(f"test.seen body {seen}")
    yield "event-in"

    env, _ = peer.read()
    if env.get("re") != 1000 or env.get("body") != {"text": "hi"}:
        raise Broken(f"expected the reply to test.echo 1000, got {env}")
    yield "serve"

    env, _ = expect_request(peer, "test.fail")
    peer.write({"re": env["id"], "from": "broker",
                "error": {"code": "privsep.not_found", "message": "no such thing"}})
    yield "error"
    seen = expect_event(peer, "test.error_seen")
    if seen != {"code": "privsep.not_found"}:
        raise Broken(f"test.error_seen body {seen}")
    yield "error-seen"

    if with_fds:
        env, _ = expect_request(peer, "test.getfd")
        r, w = os.pipe()
        os.write(w, FD_TEXT.encode())
        os.close(w)
        peer.write({"re": env["id"], "from": "broker", "body": {"what": "pipe"}, "fds": 1}, [r])
        os.close(r)
        yield "fd-in"
        text = expect_event(peer, "test.fd_text")
        if text != {"text": FD_TEXT}:
            raise Broken(f"test.fd_text body {text}")
        yield "fd-in-read"

        env, fds = expect_request(peer, "test.putfd")
        if len(fds) != 1:
            raise Broken("test.putfd without its fd")
        with os.fdopen(fds[0], "rb") as f:
            got = f.read(4096).decode()
        peer.write({"re": env["id"], "from": "broker", "body": {"text": got}})
        yield "fd-out"

    log = expect_event(peer, "privsep.log")
    if not isinstance(log.get("message"), str) or log.get("level") not in LOG_LEVELS:
        raise Broken(f"privsep.log body {log}")
    yield "log"

    env, _ = expect_request(peer, "test.bye")
    peer.write({"re": env["id"], "from": "broker", "body": {}})
    yield "bye"


def doc_steps(peer: Peer, name: str, with_fds: bool):  # type: ignore[no-untyped-def]
    env, _ = expect_request(peer, "privsep.hello")
    peer.write({"re": env["id"], "from": "broker", "body": {
        "helper": name, "protocol": 1, "max_frame": 1048576, "may_send": ["privsep.ping"], "serves": ["demo.upper"],
                     "receives": ["privsep.shutdown"]}})
    yield "hello"
    env, _ = expect_request(peer, "privsep.ping")
    peer.write({"re": env["id"], "from": "broker", "body": env.get("body", {})})
    yield "ping"
    peer.write({"type": "demo.upper", "id": 1, "from": "client", "body": {"text": "abc"}})
    env, _ = peer.read()
    if env != {"re": 1, "body": {"text": "ABC"}}:
        raise Broken(f"expected the reply to demo.upper, got {env}")
    yield "serve"
    peer.write({"type": "demo.nope", "id": 2, "from": "client", "body": {}})
    env, _ = peer.read()
    if env.get("re") != 2 or env.get("error", {}).get("code") != "privsep.unknown_type":
        raise Broken(f"expected privsep.unknown_type for demo.nope, got {env}")
    yield "unknown"
    peer.write({"type": "privsep.shutdown", "from": "broker", "body": {"grace_ms": 1000}})
    yield "shutdown"


def main(argv: List[str]) -> int:
    with_fds, label, scenario = True, "helper", "full"
    while argv and argv[0] != "--":
        opt = argv.pop(0)
        if opt == "--no-fds":
            with_fds = False
        elif opt == "--scenario":
            scenario = argv.pop(0)
        elif opt == "--label":
            label = argv.pop(0)
        else:
            print(f"fakebroker: unknown option {opt}", file=sys.stderr)
            return 2
    if not argv or argv[0] != "--" or len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1:]
    ours, theirs = socket.socketpair()
    ours.settimeout(TIMEOUT)
    env = dict(os.environ, PRIVSEP_FD="3", PRIVSEP_HELPER=label, PRIVSEP_PROTOCOL="1")
    pid = os.posix_spawnp(cmd[0], cmd, env, file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
    theirs.close()
    peer = Peer(ours)
    if scenario == "doc":
        all_steps, play = ["hello", "ping", "serve", "unknown", "shutdown"], doc_steps
    else:
        all_steps = ["hello", "ping", "event-in", "serve", "error", "error-seen"]
        if with_fds:
            all_steps += ["fd-in", "fd-in-read", "fd-out"]
        all_steps += ["log", "bye"]
        play = steps
    passed: List[str] = []
    failure = ""
    try:
        for step in play(peer, label, with_fds):
            passed.append(step)
        # Then the helper exits; it must not send anything else.
        try:
            extra = ours.recv(1)
            if extra:
                failure = "helper sent bytes after the last step"
        except socket.timeout:
            failure = "helper did not exit after the last step"
    except (Broken, socket.timeout, OSError, ValueError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    ours.close()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    failed = 0
    for step in all_steps:
        if step in passed:
            print(f"ok   {label}: scenario {step}")
        else:
            print(f"FAIL {label}: scenario {step}: {failure or 'not reached'}")
            failure = "not reached"
            failed += 1
    if code != 0:
        print(f"FAIL {label}: helper exit status {code}")
        failed += 1
    else:
        print(f"ok   {label}: helper exit status 0")
    print(f"{label}: {len(all_steps) + 1 - failed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
