"""Unit tests of privsep.py over real socketpairs.

Where the client blocks, a thread plays the broker with raw socket calls (no privsep.py
code), synchronised by the sockets themselves.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import sys
import threading
import unittest
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import privsep  # noqa: E402


def frame(obj: Any) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    return len(data).to_bytes(4, "big") + data


def raw(text: bytes) -> bytes:
    return len(text).to_bytes(4, "big") + text


def _recv_exact(sock: socket.socket, n: int, fds: List[int]) -> bytes:
    buf = b""
    while len(buf) < n:
        data, fds_now, _, _ = socket.recv_fds(sock, n - len(buf), 16)
        if not data:
            raise EOFError
        buf += data
        fds += fds_now
    return buf


def read_frame(sock: socket.socket) -> Tuple[Dict[str, Any], List[int]]:
    """Reads exactly one frame with its fds, raw."""
    fds: List[int] = []
    n = int.from_bytes(_recv_exact(sock, 4, fds), "big")
    return json.loads(_recv_exact(sock, n, fds)), fds


class Peer(threading.Thread):
    """Runs fn(sock) on the broker's end; the exception, if any, is re-raised by join()."""

    def __init__(self, sock: socket.socket, fn: Callable[[socket.socket], None]) -> None:
        super().__init__(daemon=True)
        self.sock, self.fn = sock, fn
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.fn(self.sock)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> None:
        self.join(10)
        if self.error is not None:
            raise self.error


def pair(timeout: float = 5) -> Tuple[privsep.Connection, socket.socket]:
    a, b = socket.socketpair()
    return privsep.Connection(a, "t", timeout=timeout), b


def fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
        return False
    except OSError as exc:
        return exc.errno == errno.EBADF


class DecodeTests(unittest.TestCase):
    def fatal(self, body: bytes, reason: str = "invalid_json") -> None:
        with self.assertRaises(privsep.PrivsepError) as cm:
            privsep.decode_frame(body)
        self.assertEqual((cm.exception.code, cm.exception.reason, cm.exception.fatal),
                         ("privsep.protocol", reason, True), body)

    def test_ijson_rules(self) -> None:
        self.fatal(b'{"type":"a.b","type":"a.c"}')
        self.fatal(b'{"type":"a.b","body":{"k":1,"\\u006b":2}}')
        self.fatal(b'{"type":"a.b","body":{"n":NaN}}')
        self.fatal(b'{"type":"a.b","body":{"n":-Infinity}}')
        self.fatal(b'{"type":"a.b","body":{"s":"\\ud800"}}')
        self.fatal(b'{"type":"a.b","body":{"s":"\xff"}}')
        self.fatal(b'{"type":"a.b","body":{"s":"\xc0\xaf"}}')
        self.fatal(b'{"type":"a.b","body":{"s":"\xed\xa0\x80"}}')
        self.fatal(b'\xef\xbb\xbf{"type":"a.b"}')
        self.fatal(b'{"type":"a.b"}{}')
        self.fatal(b"[1]", "not_object")
        self.fatal(b"null", "not_object")
        self.assertEqual(privsep.decode_frame(b'{"s":"\\ud83d\\ude00"}'), {"s": "\U0001F600"})

    def test_depth(self) -> None:
        def nested(depth: int) -> bytes:
            return b'{"type":"a.b","body":{"d":' + b"[" * (depth - 2) + b"]" * (depth - 2) + b"}}"
        privsep.decode_frame(nested(64))
        self.fatal(nested(65))
        self.fatal(nested(100000))

    def test_integers_by_value(self) -> None:
        env = privsep.decode_frame(b'{"type":"a.b","id":1.0,"body":{"big":123456789012345678901234567890}}')
        self.assertIs(type(env["id"]), int)
        self.assertEqual(env["body"]["big"], 123456789012345678901234567890)

    def test_outgoing_checks(self) -> None:
        for env, reason in [({"type": "a.b", "from": "x"}, "from_forbidden"), ({"type": "A"}, "bad_type"),
                            ({"type": "a.b", "id": True}, "bad_id"), ({"re": 1, "type": "a.b"}, "bad_kind")]:
            with self.assertRaises(privsep.PrivsepError) as cm:
                privsep.encode_frame(env)
            self.assertEqual((cm.exception.code, cm.exception.reason), ("privsep.invalid", reason))
        with self.assertRaises(privsep.PrivsepError) as cm:
            privsep.encode_frame({"type": "a.b", "body": {"p": "x" * 100}}, max_frame=64)
        self.assertEqual(cm.exception.code, "privsep.too_large")
        with self.assertRaises(privsep.PrivsepError) as cm:
            privsep.encode_frame({"type": "a.b", "body": {"n": float("nan")}})
        self.assertEqual(cm.exception.code, "privsep.invalid")
        self.assertEqual(privsep.encode_frame({"type": "a.b"}), raw(b'{"type":"a.b"}'))


class DecoderTests(unittest.TestCase):
    def test_lengths(self) -> None:
        for prefix, code, reason in [(b"\0\0\0\0", "privsep.protocol", "frame_too_short"),
                                     (b"\0\0\0\1", "privsep.protocol", "frame_too_short"),
                                     (b"\xff\xff\xff\xff", "privsep.too_large", "frame_too_large"),
                                     (b"\0\x10\0\x01", "privsep.too_large", "frame_too_large")]:
            dec = privsep.Decoder()
            dec.feed(prefix)
            with self.assertRaises(privsep.PrivsepError) as cm:
                dec.take()
            self.assertEqual((cm.exception.code, cm.exception.reason), (code, reason))
            with self.assertRaises(privsep.PrivsepError):
                dec.take()  # final

    def test_byte_by_byte_and_batched(self) -> None:
        stream = frame({"type": "a.b"}) + frame({"re": 3, "body": {"k": 1}})
        dec = privsep.Decoder()
        got = []
        for i in range(len(stream)):
            dec.feed(stream[i:i + 1])
            while (m := dec.take()) is not None:
                got.append(m)
        self.assertEqual([m.kind for m in got], ["event", "reply"])
        dec.feed(stream)
        self.assertIsNotNone(dec.take())
        self.assertIsNotNone(dec.take())
        self.assertIsNone(dec.take())

    def test_refused_then_valid(self) -> None:
        dec = privsep.Decoder()
        dec.feed(frame({"type": "a.b", "id": 7, "x": 1}) + frame({"type": "a.b"}))
        refused = dec.take()
        assert isinstance(refused, privsep.Refused)
        self.assertEqual((refused.error.code, refused.error.reason, refused.error.reply_to, refused.error.fatal),
                         ("privsep.invalid", "unknown_member", 7, False))
        self.assertIsInstance(dec.take(), privsep.Message)

    def test_fd_errors_close_fds(self) -> None:
        fd = os.open("/dev/null", os.O_RDONLY)
        dec = privsep.Decoder()
        dec.feed(frame({"type": "a.b"}), [fd])
        with self.assertRaises(privsep.PrivsepError) as cm:
            dec.take()
        self.assertEqual(cm.exception.reason, "fds_unclaimed")
        self.assertTrue(fd_closed(fd))
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(9)]
        with self.assertRaises(privsep.PrivsepError) as cm:
            privsep.Decoder().feed(b"\0\0", fds)
        self.assertEqual(cm.exception.reason, "fds_mismatch")
        self.assertTrue(all(fd_closed(fd) for fd in fds))

    def test_truncated_at_end(self) -> None:
        dec = privsep.Decoder()
        dec.feed(frame({"type": "a.b"})[:-2])
        self.assertIsNone(dec.take())
        dec.finish()
        with self.assertRaises(privsep.PrivsepError) as cm:
            dec.take()
        self.assertEqual(cm.exception.reason, "truncated_frame")


class ConnectionTests(unittest.TestCase):
    def test_hello(self) -> None:
        conn, b = pair()

        def broker(sock: socket.socket) -> None:
            env, _ = read_frame(sock)
            assert env["type"] == "privsep.hello" and env["body"]["protocol"] == 1, env
            assert env["body"]["client"].startswith("privsep.py/"), env
            sock.sendall(frame({"re": env["id"], "from": "broker", "body": {
                "helper": "svc", "protocol": 1, "max_frame": 4096, "may_send": [], "serves": [], "receives": []}}))
        peer = Peer(b, broker)
        peer.start()
        body = conn.hello()
        peer.finish()
        self.assertEqual((conn.max_frame, conn.helper, body["protocol"]), (4096, "svc", 1))
        with self.assertRaises(privsep.PrivsepError) as cm:
            conn.event("a.b", {"p": "x" * 5000})
        self.assertEqual(cm.exception.code, "privsep.too_large")
        conn.close()
        b.close()

    def test_request_keeps_other_messages(self) -> None:
        conn, b = pair()

        def broker(sock: socket.socket) -> None:
            env, _ = read_frame(sock)
            sock.sendall(frame({"type": "test.notice", "from": "broker", "body": {"n": 1}}) +
                         frame({"type": "test.echo", "id": 9, "from": "other", "body": {"v": "x"}}) +
                         frame({"re": env["id"], "body": {"seq": 5}}))
            rep, _ = read_frame(sock)
            assert rep == {"re": 9, "body": {"v": "x"}}, rep
            rep, _ = read_frame(sock)
            assert rep == {"re": 9, "error": {"code": "privsep.not_found", "message": "gone", "data": [1]}}, rep
        peer = Peer(b, broker)
        peer.start()
        reply = conn.request("privsep.ping", {"seq": 5})
        self.assertEqual((reply.kind, reply.body), ("reply", {"seq": 5}))
        event = conn.recv()
        self.assertEqual((event.kind, event.type, event.sender, event.body), ("event", "test.notice", "broker", {"n": 1}))
        request = next(iter(conn))
        self.assertEqual((request.kind, request.id), ("request", 9))
        conn.reply(request, request.body)
        conn.reply_error(request, "privsep.not_found", "gone", [1])
        with self.assertRaises(privsep.PrivsepError):
            conn.reply(event)  # not a request
        peer.finish()
        conn.close()
        b.close()

    def test_error_reply(self) -> None:
        conn, b = pair()

        def broker(sock: socket.socket) -> None:
            for _ in range(2):
                env, _ = read_frame(sock)
                sock.sendall(frame({"re": env["id"], "error": {"code": "privsep.denied", "message": "policy",
                                                               "data": {"rule": 2}}}))
        peer = Peer(b, broker)
        peer.start()
        with self.assertRaises(privsep.ReplyError) as cm:
            conn.request("privsep.file.read", {"path": "/etc/shadow"})
        self.assertEqual((cm.exception.code, cm.exception.message, cm.exception.data), ("privsep.denied", "policy", {"rule": 2}))
        reply = conn.request("privsep.file.read", check=False)
        self.assertEqual(reply.error and reply.error["code"], "privsep.denied")
        peer.finish()
        conn.close()
        b.close()

    def test_streamed_replies(self) -> None:
        conn, b = pair()

        def broker(sock: socket.socket) -> None:
            env, _ = read_frame(sock)
            sock.sendall(frame({"re": env["id"], "body": {"part": 1}, "more": True}) +
                         frame({"re": env["id"], "body": {"part": 2}, "more": True}) +
                         frame({"re": env["id"], "body": {"part": 3}}))
        peer = Peer(b, broker)
        peer.start()
        ident = conn.send_request("files.list")
        parts = []
        while True:
            reply = conn.wait_reply(ident)
            parts.append((reply.body["part"], reply.more))
            if not reply.more:
                break
        self.assertEqual(parts, [(1, True), (2, True), (3, False)])
        peer.finish()
        conn.close()
        b.close()

    def test_fd_receive(self) -> None:
        conn, b = pair()
        r, w = os.pipe()
        os.write(w, b"hi")
        os.close(w)
        socket.send_fds(b, [frame({"re": 1, "body": {}, "fds": 1})], [r])
        os.close(r)
        msg = conn.recv()
        self.assertEqual(len(msg.fds), 1)
        fd = msg.fds[0]
        self.assertFalse(os.get_inheritable(fd.fileno()))  # MSG_CMSG_CLOEXEC
        self.assertEqual(os.read(fd.fileno(), 8), b"hi")
        number = fd.fileno()
        del msg, fd  # an Fd closes itself when dropped
        self.assertTrue(fd_closed(number))
        conn.close()
        b.close()

    def test_fd_send(self) -> None:
        conn, b = pair()
        r, w = os.pipe()
        conn.event("test.put", {"name": "p"}, fds=[r])
        os.close(r)  # the kernel holds its own reference now
        env, fds = read_frame(b)
        self.assertEqual((env["fds"], len(fds)), (1, 1))
        os.write(w, b"yo")
        self.assertEqual(os.read(fds[0], 8), b"yo")
        os.close(fds[0])
        os.close(w)
        with self.assertRaises(privsep.PrivsepError) as cm:
            conn.send({"type": "a.b"}, fds=[0])
        self.assertEqual(cm.exception.code, "privsep.invalid")
        conn.close()
        b.close()

    def test_undeclared_fd_is_fatal_and_closed(self) -> None:
        conn, b = pair()
        r, w = os.pipe()
        socket.send_fds(b, [frame({"type": "a.b"})], [r])
        os.close(r)
        with self.assertRaises(privsep.PrivsepError) as cm:
            conn.recv()
        self.assertEqual((cm.exception.reason, cm.exception.fatal), ("fds_unclaimed", True))
        with self.assertRaises(BrokenPipeError):  # no reader left anywhere
            os.write(w, b"x")
        os.close(w)
        conn.close()
        b.close()

    def test_ctrunc(self) -> None:
        conn, b = pair()
        r, w = os.pipe()
        socket.send_fds(b, [frame({"type": "a.b", "fds": 8})], [r] * 9)
        os.close(r)
        with self.assertRaises(privsep.PrivsepError) as cm:
            conn.recv()
        self.assertEqual(cm.exception.reason, "control_truncated")
        with self.assertRaises(BrokenPipeError):
            os.write(w, b"x")
        os.close(w)
        conn.close()
        b.close()

    def test_timeout_then_message(self) -> None:
        conn, b = pair()
        with self.assertRaises(privsep.PrivsepError) as cm:
            conn.recv(timeout=0.01)
        self.assertEqual((cm.exception.code, cm.exception.fatal), ("privsep.timeout", False))
        b.sendall(frame({"type": "a.b"}))
        self.assertEqual(conn.recv().type, "a.b")
        conn.close()
        b.close()

    def test_end_of_stream(self) -> None:
        conn, b = pair()
        b.sendall(frame({"type": "a.b"}) + frame({"type": "a.c"}))
        b.close()
        self.assertEqual([m.type for m in conn], ["a.b", "a.c"])  # the iterator ends cleanly
        with self.assertRaises(privsep.PrivsepError) as cm:
            conn.recv()
        self.assertEqual(cm.exception.code, "privsep.unavailable")
        conn.close()
        conn, b = pair()
        b.sendall(frame({"type": "a.b"})[:7])
        b.close()
        with self.assertRaises(privsep.PrivsepError) as cm:
            conn.recv()
        self.assertEqual(cm.exception.reason, "truncated_frame")
        conn.close()

    def test_from_env(self) -> None:
        a, b = socket.socketpair()
        saved = {k: os.environ.get(k) for k in ("PRIVSEP_FD", "PRIVSEP_HELPER", "PRIVSEP_PROTOCOL")}
        try:
            os.environ.pop("PRIVSEP_FD", None)
            with self.assertRaises(privsep.PrivsepError):
                privsep.Connection.from_env()
            os.environ["PRIVSEP_FD"] = "3x"
            with self.assertRaises(privsep.PrivsepError):
                privsep.Connection.from_env()
            r, w = os.pipe()
            os.environ["PRIVSEP_FD"] = str(r)
            with self.assertRaises(privsep.PrivsepError):  # not a socket
                privsep.Connection.from_env()
            os.close(r)
            os.close(w)
            d1, d2 = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            os.environ["PRIVSEP_FD"] = str(d1.fileno())
            with self.assertRaises(privsep.PrivsepError):  # not a stream socket
                privsep.Connection.from_env()
            d1.close()
            d2.close()
            os.environ.update(PRIVSEP_FD=str(a.fileno()), PRIVSEP_PROTOCOL="2")
            with self.assertRaises(privsep.PrivsepError) as cm:
                privsep.Connection.from_env()
            self.assertEqual(cm.exception.code, "privsep.protocol")
            os.environ.update(PRIVSEP_PROTOCOL="1", PRIVSEP_HELPER="svc")
            conn = privsep.Connection.from_env()
            self.assertEqual((conn.helper, conn.fileno()), ("svc", a.detach()))
            conn.close()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            b.close()


@unittest.skipUnless(__import__("importlib").util.find_spec("jsonschema"), "jsonschema is not installed")
class SchemaTests(unittest.TestCase):
    SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"],
              "additionalProperties": False}

    def test_validate_body(self) -> None:
        self.assertTrue(privsep.validate_body({"path": "/x"}, self.SCHEMA))
        with self.assertRaises(privsep.PrivsepError) as cm:
            privsep.validate_body({"path": 1}, self.SCHEMA)
        self.assertEqual(cm.exception.code, "privsep.invalid")
        self.assertEqual(cm.exception.data, {"errors": [{"instanceLocation": "/path",
                                                         "keywordLocation": "/properties/path/type",
                                                         "error": "1 is not of type 'string'"}]})

    def test_connection_schemas(self) -> None:
        a, b = socket.socketpair()
        conn = privsep.Connection(a, "t", timeout=5, schemas={"files.open": self.SCHEMA})
        with self.assertRaises(privsep.PrivsepError):
            conn.event("files.open", {"path": 3})
        # an invalid incoming request is answered privsep.invalid and skipped
        b.sendall(frame({"type": "files.open", "id": 4, "body": {}}) +
                  frame({"type": "files.open", "id": 5, "body": {"path": "/ok"}}))
        self.assertEqual(conn.recv().id, 5)
        env, _ = read_frame(b)
        self.assertEqual((env["re"], env["error"]["code"]), (4, "privsep.invalid"))
        conn.close()
        b.close()


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    unittest.main()
