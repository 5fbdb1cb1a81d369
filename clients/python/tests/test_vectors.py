"""Conformance: every case of Tests/Conformance/vectors/*.json through privsep.Decoder
(pure, fds of /dev/null) and through a Connection on a real socketpair (one sendmsg
per read, fds as SCM_RIGHTS)."""

from __future__ import annotations

import glob
import json
import os
import socket
import sys
import unittest
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import privsep  # noqa: E402

VECTORS = os.environ.get("PRIVSEP_VECTORS", os.path.join(HERE, "..", "..", "..", "Tests", "Conformance", "vectors"))


def same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but booleans are never numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def reads(case: Dict[str, Any]) -> List[Tuple[bytes, int]]:
    data = bytes.fromhex(case["input"])
    cuts = [0] + list(case.get("chunks", [])) + [len(data)]
    nfds = [0] * (len(cuts) - 1)
    for spec in case.get("fds", []):
        nfds[spec["chunk"]] += spec["count"]
    return [(data[cuts[i]:cuts[i + 1]], nfds[i]) for i in range(len(cuts) - 1)]


def devnull(n: int) -> List[int]:
    return [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _ in range(n)]


class Outcome:
    def __init__(self) -> None:
        self.messages: List[Any] = []
        self.error: Optional[Dict[str, str]] = None

    def add(self, item: Any) -> None:
        if isinstance(item, privsep.Message):
            for fd in item.fds:
                if fd.closed or not (os.get_inheritable(fd.fileno()) is False):
                    raise AssertionError("a handed-over fd is closed or inheritable")
            self.messages.append({"envelope": item.envelope, "fds": len(item.fds)})
            item.close()
        else:
            e = item.error
            self.messages.append({"refused": {"code": e.code, "reason": e.reason, "reply_to": e.reply_to}})

    def fail(self, exc: privsep.PrivsepError) -> None:
        self.error = {"code": exc.code, "reason": exc.reason}

    def as_expect(self) -> Dict[str, Any]:
        return {"messages": self.messages, "error": self.error}


def role_is_helper(case: Dict[str, Any]) -> bool:
    return case.get("role", "helper") == "helper"


def run_feed(case: Dict[str, Any]) -> Outcome:
    out = Outcome()
    dec = privsep.Decoder(case.get("max_frame", privsep.FRAME_DEFAULT), peer_is_helper=role_is_helper(case))
    try:
        for data, n in reads(case):
            dec.feed(data, devnull(n))
            while (item := dec.take()) is not None:
                out.add(item)
        dec.finish()
        while (item := dec.take()) is not None:
            out.add(item)
    except privsep.PrivsepError as exc:
        if not exc.fatal:
            raise
        out.fail(exc)
    return out


def run_socket(case: Dict[str, Any]) -> Outcome:
    """The same through Connection's own read path: recv_fds with MSG_CMSG_CLOEXEC."""
    out = Outcome()
    a, b = socket.socketpair()
    conn = privsep.Connection(a, "vectors", timeout=5)
    conn._decoder.peer_is_helper = role_is_helper(case)
    conn._decoder.max_frame = case.get("max_frame", privsep.FRAME_DEFAULT)
    try:
        for data, n in reads(case):
            if not data and not n:
                continue
            fds = devnull(n)
            if fds:
                socket.send_fds(b, [data], fds)
            else:
                b.sendall(data)
            for fd in fds:
                os.close(fd)
            conn._read(conn._deadline(5))
            while (item := conn._decoder.take()) is not None:
                out.add(item)
        b.shutdown(socket.SHUT_WR)
        conn._read(conn._deadline(5))
        while (item := conn._decoder.take()) is not None:
            out.add(item)
    except privsep.PrivsepError as exc:
        if not exc.fatal:
            raise
        out.fail(exc)
    finally:
        conn.close()
        b.close()
    return out


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class VectorTests(unittest.TestCase):
    def test_vector_files_exist(self) -> None:
        self.assertTrue(glob.glob(os.path.join(VECTORS, "*.json")), f"no vectors in {VECTORS}")


def _make(area: str, case: Dict[str, Any], mode: str) -> Any:
    def test(self: unittest.TestCase) -> None:
        before = open_fds()
        got = (run_feed if mode == "feed" else run_socket)(case).as_expect()
        want = case["expect"]
        self.assertTrue(same(want, got), f"\nwant {json.dumps(want)}\ngot  {json.dumps(got)}")
        self.assertEqual(before, open_fds(), "descriptors leaked")
    test.__doc__ = f"{area}/{case['name']} [{mode}]"
    return test


for _path in sorted(glob.glob(os.path.join(VECTORS, "*.json"))):
    with open(_path, encoding="utf-8") as _f:
        _doc = json.load(_f)
    for _case in _doc["cases"]:
        _big = any(len(d) > 65536 for d, _ in reads(_case))
        for _mode in ("feed",) if _big else ("feed", "socket"):
            _name = f"test_{_doc['area']}_{_case['name']}_{_mode}".replace("-", "_")
            setattr(VectorTests, _name, _make(_doc["area"], _case, _mode))

if __name__ == "__main__":
    unittest.main()
