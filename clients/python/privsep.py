"""privsep: the Python client of the privsep wire protocol v1 (standard library only).

A helper started by the broker talks to it over one AF_UNIX stream socket, fd 3
(``PRIVSEP_FD``). Each frame is a 4-byte big-endian length and one JSON object,
the envelope; file descriptors travel as SCM_RIGHTS with the frame that declares
them in ``fds``. See docs/protocol.md and docs/client-python.md.

    with privsep.Connection.from_env() as conn:
        conn.hello()
        reply = conn.request("privsep.ping", {"seq": 1})
        for msg in conn:                  # requests and events sent to this helper
            if msg.kind == "request":
                conn.reply(msg, {"ok": True})

Errors are :class:`PrivsepError` values carrying the protocol's ``code``
(``privsep.protocol``, ``privsep.invalid``, ...), a stable ``reason`` and whether
the connection is finished (``fatal``). An error *reply* to a request raises
:class:`ReplyError` from :meth:`Connection.request` unless ``check=False``.
"""

from __future__ import annotations

import array
import collections
import json
import os
import select
import socket
import stat
import time
from typing import Any, Deque, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "PROTOCOL", "FRAME_MIN", "FRAME_DEFAULT", "FRAME_LIMIT", "FDS_MAX", "DEPTH_MAX", "ID_MAX",
    "PrivsepError", "ReplyError", "Fd", "Message", "Refused", "Decoder", "Connection",
    "decode_frame", "check_envelope", "encode_frame", "validate_body",
]

__version__ = "0.1.0"

PROTOCOL = 1
FRAME_MIN = 2
FRAME_DEFAULT = 1 << 20  # until the hello reply says otherwise
FRAME_LIMIT = 16 << 20  # no broker may announce more
FDS_MAX = 8  # per frame
DEPTH_MAX = 64  # JSON nesting; the envelope object is depth 1
ID_MAX = 2**53 - 1

PENDING_MAX = 256  # messages held while a request waits for its reply
READ_CHUNK = 65536
TIMEOUT_DEFAULT = 30.0  # seconds, for waits given no timeout

JSONObject = Dict[str, Any]
_MEMBERS = frozenset(("type", "id", "re", "body", "error", "more", "fds", "from"))


class PrivsepError(Exception):
    """An error as a value: protocol ``code``, stable ``reason``, and a message.

    ``fatal`` means the connection cannot be used after it; ``reply_to`` is the id
    of a refused request (so it can still be answered), else None.
    """

    def __init__(self, code: str, reason: str, message: str, *, fatal: bool = False,
                 reply_to: Optional[int] = None, data: Any = None) -> None:
        super().__init__(f"{code} ({reason}): {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.fatal = fatal
        self.reply_to = reply_to
        self.data = data


class ReplyError(PrivsepError):
    """The peer answered a request with an error reply; ``reply`` is that message."""

    def __init__(self, reply: "Message") -> None:
        err = reply.error or {}
        super().__init__(str(err.get("code")), "error_reply", str(err.get("message")),
                         data=err.get("data"))
        self.reply = reply


def _protocol(reason: str, message: str, code: str = "privsep.protocol") -> PrivsepError:
    return PrivsepError(code, reason, message, fatal=True)


class Fd:
    """A received file descriptor that closes itself unless detached."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("descriptor already closed or detached")
        return self._fd

    def detach(self) -> int:
        """Hands the descriptor over; the caller closes it."""
        fd, self._fd = self.fileno(), -1
        return fd

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def __enter__(self) -> "Fd":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        return f"Fd({self._fd})"


class Message:
    """A received, validated envelope and the descriptors that came with it."""

    __slots__ = ("envelope", "fds")

    def __init__(self, envelope: JSONObject, fds: Optional[List[Fd]] = None) -> None:
        self.envelope = envelope
        self.fds: List[Fd] = fds or []

    @property
    def kind(self) -> str:
        """``"request"``, ``"event"`` or ``"reply"``."""
        if "re" in self.envelope:
            return "reply"
        return "request" if "id" in self.envelope else "event"

    @property
    def type(self) -> Optional[str]:
        return self.envelope.get("type")

    @property
    def id(self) -> Optional[int]:
        return self.envelope.get("id")

    @property
    def re(self) -> Optional[int]:
        return self.envelope.get("re")

    @property
    def sender(self) -> Optional[str]:
        """The ``from`` member: who sent it, as the broker says."""
        return self.envelope.get("from")

    @property
    def body(self) -> JSONObject:
        body: JSONObject = self.envelope.get("body", {})
        return body

    @property
    def error(self) -> Optional[JSONObject]:
        return self.envelope.get("error")

    @property
    def more(self) -> bool:
        return self.envelope.get("more") is True

    def close(self) -> None:
        """Closes every descriptor not detached."""
        for fd in self.fds:
            fd.close()

    def __repr__(self) -> str:
        return f"Message({self.envelope!r}, fds={self.fds!r})"


class Refused:
    """A frame that parsed but is not a valid envelope; the stream goes on."""

    __slots__ = ("error",)

    def __init__(self, error: PrivsepError) -> None:
        self.error = error


# --- JSON and envelopes ------------------------------------------------------------


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> JSONObject:
    obj: JSONObject = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_tree(value: Any) -> None:
    """Nesting depth (the top object is 1) and lone surrogates, without recursion."""
    stack: List[Tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)) and depth > DEPTH_MAX:
            raise ValueError(f"nesting deeper than {DEPTH_MAX}")
        if isinstance(node, dict):
            for key, child in node.items():
                _check_string(key)
                stack.append((child, depth + 1))
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
        elif isinstance(node, str):
            _check_string(node)


def _check_string(text: str) -> None:
    # json decodes a valid surrogate pair escape to one code point; what is left is lone.
    for ch in text:
        if "\ud800" <= ch <= "\udfff":
            raise ValueError("lone surrogate escape")


def decode_frame(body: bytes) -> JSONObject:
    """Parses one frame body as an I-JSON object within the depth limit.

    Raises a fatal :class:`PrivsepError` (invalid_json, not_object).
    """
    try:
        text = bytes(body).decode("utf-8")  # strict: overlong forms and surrogate bytes fail
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        _check_tree(value)
    except RecursionError:
        raise _protocol("invalid_json", "frame: nesting too deep") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _protocol("invalid_json", f"frame: not I-JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _protocol("not_object", f"frame holds a JSON {type(value).__name__}, not an object")
    for key in ("id", "re", "fds"):
        # 1.0 names the integer 1
        number = value.get(key)
        if isinstance(number, float) and number.is_integer() and abs(number) <= ID_MAX:
            value[key] = int(number)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= ID_MAX


def _type_valid(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    segments = name.split(".")
    if len(segments) < 2:
        return False
    for seg in segments:
        if not seg or not ("a" <= seg[0] <= "z"):
            return False
        for ch in seg[1:]:
            if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_"):
                return False
    return True


def _preflight(env: JSONObject, sender_is_helper: bool) -> int:
    """The fatal checks; returns the number of fds the frame declares."""
    if sender_is_helper and "from" in env:
        raise _protocol("from_forbidden", "member 'from' sent by a helper: identity comes from the socket")
    if "fds" not in env:
        return 0
    fds = env["fds"]
    if not _is_int(fds) or not 1 <= fds <= FDS_MAX:
        raise _protocol("bad_fds", f"member 'fds' must be an integer in 1..{FDS_MAX}")
    return int(fds)


def _refuse(env: JSONObject, reason: str, message: str) -> PrivsepError:
    reply_to = env.get("id") if "re" not in env and _is_id(env.get("id")) else None
    return PrivsepError("privsep.invalid", reason, message, reply_to=reply_to)


def _validate(env: JSONObject) -> None:
    """The per-message checks, in the order the protocol fixes."""
    for key in env:
        if key not in _MEMBERS:
            raise _refuse(env, "unknown_member", f"unknown top-level member {key!r}")
    if "type" in env and not _type_valid(env["type"]):
        raise _refuse(env, "bad_type", "member 'type' must match ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$")
    if "id" in env and not _is_id(env["id"]):
        raise _refuse(env, "bad_id", "member 'id' must be an integer in 1..2^53-1")
    if "re" in env and not _is_id(env["re"]):
        raise _refuse(env, "bad_re", "member 're' must be an integer in 1..2^53-1")
    if "body" in env and not isinstance(env["body"], dict):
        raise _refuse(env, "bad_body", "member 'body' must be an object")
    if "error" in env:
        err = env["error"]
        if not isinstance(err, dict):
            raise _refuse(env, "bad_error", "member 'error' must be an object")
        for key in err:
            if key not in ("code", "message", "data"):
                raise _refuse(env, "bad_error", f"member 'error' has unknown member {key!r}")
        if not _type_valid(err.get("code")):
            raise _refuse(env, "bad_error", "member 'error.code' must be a dotted lower-case name")
        if not isinstance(err.get("message"), str):
            raise _refuse(env, "bad_error", "member 'error.message' must be a string")
    if "more" in env and env["more"] is not True:
        raise _refuse(env, "bad_more", "member 'more' must be true when present")
    if "from" in env and (not isinstance(env["from"], str) or not env["from"]):
        raise _refuse(env, "bad_from", "member 'from' must be a non-empty string")
    if "re" in env:
        if "type" in env:
            raise _refuse(env, "bad_kind", "a reply ('re') has no 'type'")
        if "id" in env:
            raise _refuse(env, "bad_kind", "a reply ('re') has no 'id'")
        if "error" in env and "body" in env:
            raise _refuse(env, "bad_kind", "a reply has 'body' or 'error', not both")
        if "error" in env and "more" in env:
            raise _refuse(env, "bad_more", "a failed reply is final: 'more' is not allowed")
        if "error" not in env:
            env.setdefault("body", {})
        return
    if "type" not in env:
        raise _refuse(env, "bad_kind", "neither 'type' (request, event) nor 're' (reply) is present")
    if "error" in env:
        raise _refuse(env, "bad_kind", "'error' is only allowed on a reply")
    if "more" in env:
        raise _refuse(env, "bad_more", "'more' is only allowed on a reply")
    env.setdefault("body", {})


def check_envelope(env: JSONObject, *, from_broker: bool = True) -> None:
    """Checks the envelope rules; ``from_broker=False`` checks what a helper sends."""
    _preflight(env, not from_broker)
    _validate(env)


def encode_frame(env: JSONObject, max_frame: int = FRAME_DEFAULT) -> bytes:
    """The frame for an envelope a helper sends: length prefix and compact JSON."""
    try:
        check_envelope(dict(env), from_broker=False)
    except PrivsepError as exc:
        raise PrivsepError("privsep.invalid", exc.reason, exc.message) from None
    try:
        data = json.dumps(env, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise PrivsepError("privsep.invalid", "argument", f"envelope cannot be serialized: {exc}") from None
    if len(data) > max_frame:
        raise PrivsepError("privsep.too_large", "unsendable", f"frame of {len(data)} bytes over max_frame {max_frame}")
    return len(data).to_bytes(4, "big") + data


def validate_body(body: JSONObject, schema: Mapping[str, Any]) -> bool:
    """Validates a body against a JSON Schema when the jsonschema package is installed.

    Returns False when it is not (nothing was checked); raises privsep.invalid whose
    ``data`` is ``{"errors": [{"instanceLocation", "keywordLocation", "error"}]}`` (JSON
    pointers), as the broker reports schema failures.
    """
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        return False
    validator_class = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_class(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        def pointer(parts: Sequence[Any]) -> str:
            return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
        # The shape the broker uses: JSON Schema's "basic" output, locations as JSON pointers.
        data = {"errors": [{"instanceLocation": pointer(list(e.absolute_path)),
                            "keywordLocation": pointer(list(e.absolute_schema_path)),
                            "error": e.message} for e in errors]}
        raise PrivsepError("privsep.invalid", "schema", errors[0].message, data=data)
    return True


# --- Framing and fd attribution ------------------------------------------------------


class _Batch:
    """The fds of one read; owned by the last frame whose prefix starts in that read."""

    __slots__ = ("fds", "owner", "start", "end")

    def __init__(self, fds: List[Fd], owner: Optional[int], start: int, end: int) -> None:
        self.fds = fds
        self.owner = owner
        self.start = start
        self.end = end


class Decoder:
    """Reads (bytes plus the fds that came with them) in, messages out; no system calls.

    ``peer_is_helper`` decodes as the broker does (``from`` is then a protocol error).
    A fatal error closes every fd held and is raised again by every later call.
    """

    def __init__(self, max_frame: int = FRAME_DEFAULT, *, peer_is_helper: bool = False) -> None:
        self.max_frame = max_frame
        self.peer_is_helper = peer_is_helper
        self._buf = bytearray()
        self._off = 0  # stream offset of _buf[0]
        self._scan = 0  # stream offset of the latest frame start seen
        self._batches: Deque[_Batch] = collections.deque()
        self._eof = False
        self.failure: Optional[PrivsepError] = None

    def _fail(self, error: PrivsepError) -> PrivsepError:
        self.failure = error
        for batch in self._batches:
            for fd in batch.fds:
                fd.close()
        self._batches.clear()
        return error

    def _length_ok(self, n: int) -> bool:
        return FRAME_MIN <= n <= self.max_frame

    def feed(self, data: bytes, fds: Sequence[int] = ()) -> None:
        """Adds one read; takes ownership of ``fds``."""
        owned = [Fd(fd) for fd in fds]
        if self.failure is not None:
            for fd in owned:
                fd.close()
            raise self.failure
        start, end = self._off + len(self._buf), self._off + len(self._buf) + len(data)
        if owned:
            self._batches.append(_Batch(owned, None, start, end))
            if not data:
                raise self._fail(_protocol("fds_unclaimed", f"{len(owned)} fds arrived without data"))
            if len(owned) > FDS_MAX:
                raise self._fail(_protocol("fds_mismatch", f"{len(owned)} fds in one read; a frame carries at most {FDS_MAX}"))
        self._buf += data
        owner = None
        s = self._scan
        while True:  # walk the prefixes to the last frame starting inside this read
            if start <= s < end:
                owner = s
            if s + 4 > end:
                break
            i = s - self._off
            n = int.from_bytes(self._buf[i:i + 4], "big")
            if not self._length_ok(n) or s + 4 + n > end:
                break  # a bad length is reported when that frame is taken
            s += 4 + n
        self._scan = s
        if owned:
            self._batches[-1].owner = owner

    def finish(self) -> None:
        """Marks the end of the stream."""
        self._eof = True

    def take(self) -> Union[Message, Refused, None]:
        """The next outcome, or None when no complete frame is buffered."""
        if self.failure is not None:
            raise self.failure
        try:
            return self._take()
        except PrivsepError as exc:
            if exc.fatal:
                raise self._fail(exc) from None
            raise

    def _take(self) -> Union[Message, Refused, None]:
        head = self._batches[0] if self._batches else None
        start = self._off
        n = -1
        if len(self._buf) >= 4:
            n = int.from_bytes(self._buf[:4], "big")
            if n < FRAME_MIN:
                raise _protocol("frame_too_short", f"frame at offset {start}: length {n} below {FRAME_MIN}")
            if n > self.max_frame:
                raise _protocol("frame_too_large", f"frame at offset {start}: length {n} above max_frame {self.max_frame}",
                                code="privsep.too_large")
        complete = n >= 0 and len(self._buf) - 4 >= n
        if head is not None and head.owner is None and head.end <= start:
            raise _protocol("fds_unclaimed", f"{len(head.fds)} fds arrived in a read where no frame starts")
        if not complete:
            # Every frame the reads completed is delivered: what still waits must belong to
            # the frame being assembled, so its read must contain that frame's start.
            for batch in self._batches:
                if not batch.start <= start < batch.end:
                    raise _protocol("fds_unclaimed", f"{len(batch.fds)} fds arrived in a read where no frame starts")
            if self._eof and self._buf:
                raise _protocol("truncated_frame", f"frame at offset {start}: stream ended after {len(self._buf)} bytes")
            return None
        env = decode_frame(bytes(self._buf[4:4 + n]))
        declared = _preflight(env, self.peer_is_helper)
        claimed: List[Fd] = []
        if head is not None and head.owner == start:
            if declared != len(head.fds):
                raise _protocol("fds_unclaimed" if declared == 0 else "fds_mismatch",
                                f"frame at offset {start} declares {declared} fds but {len(head.fds)} arrived with it")
            claimed = head.fds
            self._batches.popleft()
        elif declared > 0:
            raise _protocol("fds_missing", f"frame at offset {start} declares {declared} fds but none arrived with its first byte")
        del self._buf[:4 + n]
        self._off += 4 + n
        try:
            _validate(env)
        except PrivsepError as exc:
            for fd in claimed:
                fd.close()
            return Refused(exc)
        return Message(env, claimed)

    def frame_buffered(self) -> bool:
        return len(self._buf) >= 4 and len(self._buf) - 4 >= int.from_bytes(self._buf[:4], "big")


# --- The connection ---------------------------------------------------------------------


class Connection:
    """One connection to the broker; blocking, every wait bounded by a timeout."""

    def __init__(self, sock: socket.socket, helper: str = "", *, timeout: float = TIMEOUT_DEFAULT,
                 schemas: Optional[Mapping[str, Mapping[str, Any]]] = None) -> None:
        self.sock = sock
        self.helper = helper
        self.timeout = timeout
        self.max_frame = FRAME_DEFAULT
        self.schemas = dict(schemas or {})
        self._decoder = Decoder(self.max_frame)
        self._pending: Deque[Message] = collections.deque()
        self._next_id = 1
        self._closed_by_peer = False
        sock.setblocking(True)

    @classmethod
    def from_env(cls, **kwargs: Any) -> "Connection":
        """The connection the broker set up: PRIVSEP_FD, PRIVSEP_HELPER, PRIVSEP_PROTOCOL."""
        proto = os.environ.get("PRIVSEP_PROTOCOL")
        if proto is not None and proto != str(PROTOCOL):
            raise PrivsepError("privsep.protocol", "environment", f"PRIVSEP_PROTOCOL={proto!r}, this client speaks {PROTOCOL}")
        text = os.environ.get("PRIVSEP_FD")
        if text is None:
            raise PrivsepError("privsep.invalid", "environment", "PRIVSEP_FD is not set (not started by privsep?)")
        if not text.isdigit():
            raise PrivsepError("privsep.invalid", "environment", f"PRIVSEP_FD={text!r} is not a descriptor number")
        fd = int(text)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                raise OSError("not a socket")
        except OSError as exc:
            raise PrivsepError("privsep.invalid", "environment", f"PRIVSEP_FD={fd} is not an open socket: {exc}") from None
        sock = socket.socket(fileno=fd)
        if sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise PrivsepError("privsep.invalid", "environment", f"PRIVSEP_FD={fd} is not a stream socket")
        os.set_inheritable(fd, False)
        return cls(sock, os.environ.get("PRIVSEP_HELPER", ""), **kwargs)

    # -- lifetime

    def close(self) -> None:
        self._decoder._fail(PrivsepError("privsep.unavailable", "connection_closed", "closed"))
        while self._pending:
            self._pending.popleft().close()
        self.sock.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- sending

    def send(self, envelope: JSONObject, fds: Sequence[int] = ()) -> None:
        """Sends an envelope as is; its ``fds`` member must equal ``len(fds)``."""
        if envelope.get("fds", 0) != len(fds):
            raise PrivsepError("privsep.invalid", "argument", f"envelope declares {envelope.get('fds', 0)} fds, {len(fds)} given")
        self._check_schema(envelope)
        frame = encode_frame(envelope, self.max_frame)
        deadline = time.monotonic() + self.timeout
        try:
            # The fds ride on the one sendmsg that starts at the frame's length prefix.
            sent = self._with_deadline(deadline, lambda: socket.send_fds(self.sock, [frame], list(fds)) if fds
                                       else self.sock.send(frame, socket.MSG_NOSIGNAL))
            while sent < len(frame):
                rest = frame[sent:]
                sent += self._with_deadline(deadline, lambda: self.sock.send(rest, socket.MSG_NOSIGNAL))
        except (BrokenPipeError, ConnectionResetError):
            raise PrivsepError("privsep.unavailable", "connection_closed", "broker closed the connection", fatal=True) from None
        except OSError as exc:
            raise PrivsepError("privsep.internal", "system", f"sendmsg: {exc}", fatal=True) from None

    def _with_deadline(self, deadline: float, op: Any) -> int:
        left = deadline - time.monotonic()
        if left <= 0:
            raise PrivsepError("privsep.timeout", "timeout", "the broker did not take the frame in time")
        self.sock.settimeout(left)
        try:
            return int(op())
        except socket.timeout:
            raise PrivsepError("privsep.timeout", "timeout", "the broker did not take the frame in time") from None
        finally:
            self.sock.settimeout(None)

    def _check_schema(self, envelope: JSONObject) -> None:
        schema = self.schemas.get(envelope.get("type", ""))
        if schema is not None:
            validate_body(envelope.get("body", {}), schema)

    def _new_id(self) -> int:
        ident = self._next_id
        self._next_id = 1 if ident == ID_MAX else ident + 1
        return ident

    @staticmethod
    def _with(env: JSONObject, body: Optional[JSONObject], fds: Sequence[int]) -> JSONObject:
        env["body"] = {} if body is None else body
        if fds:
            env["fds"] = len(fds)
        return env

    def send_request(self, type: str, body: Optional[JSONObject] = None, fds: Sequence[int] = ()) -> int:
        """Sends a request with a fresh id and returns the id."""
        ident = self._new_id()
        self.send(self._with({"type": type, "id": ident}, body, fds), fds)
        return ident

    def event(self, type: str, body: Optional[JSONObject] = None, fds: Sequence[int] = ()) -> None:
        self.send(self._with({"type": type}, body, fds), fds)

    def reply(self, request: Message, body: Optional[JSONObject] = None, fds: Sequence[int] = (),
              more: bool = False) -> None:
        if request.kind != "request":
            raise PrivsepError("privsep.invalid", "argument", "reply: the message is not a request")
        env = self._with({"re": request.id}, body, fds)
        if more:
            env["more"] = True
        self.send(env, fds)

    def reply_error(self, request: Message, code: str, message: str, data: Any = None) -> None:
        if request.kind != "request":
            raise PrivsepError("privsep.invalid", "argument", "reply: the message is not a request")
        error: JSONObject = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        self.send({"re": request.id, "error": error})

    def log(self, level: str, message: str, fields: Optional[Mapping[str, Any]] = None) -> None:
        """A privsep.log event; level: trace, debug, info, notice, warning, error, critical."""
        body: JSONObject = {"level": level, "message": message}
        if fields:
            body["fields"] = dict(fields)
        self.event("privsep.log", body)

    # -- receiving

    def _read(self, deadline: float) -> None:
        """Waits for one read until the deadline and feeds it to the decoder."""
        if self._closed_by_peer:
            raise PrivsepError("privsep.unavailable", "connection_closed", "broker closed the connection", fatal=True)
        left = deadline - time.monotonic()
        ready, _, _ = select.select([self.sock], [], [], None if left == float("inf") else max(left, 0))
        if not ready:
            raise PrivsepError("privsep.timeout", "timeout", "no message in time")
        try:
            # Not socket.recv_fds: before Python 3.12 it drops its flags (MSG_CMSG_CLOEXEC).
            data, ancdata, flags, _ = self.sock.recvmsg(READ_CHUNK, socket.CMSG_SPACE(FDS_MAX * 4),
                                                        socket.MSG_CMSG_CLOEXEC)
        except ConnectionResetError:
            data, ancdata, flags = b"", [], 0
        except OSError as exc:
            raise self._decoder._fail(PrivsepError("privsep.internal", "system", f"recvmsg: {exc}", fatal=True)) from None
        fds = array.array("i")
        foreign = False
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
            else:
                foreign = True
        if flags & socket.MSG_CTRUNC or foreign:
            for fd in fds:
                os.close(fd)
            raise self._decoder._fail(_protocol("control_truncated", f"MSG_CTRUNC (more than {FDS_MAX} fds in one read) or a control message other than SCM_RIGHTS"))
        if not data and not fds:
            self._closed_by_peer = True
            self._decoder.finish()
            return
        self._decoder.feed(data, fds)

    def _next_frame(self, deadline: float) -> Optional[Message]:
        """The next valid message from the socket; None when the broker closed cleanly."""
        while True:
            outcome = self._decoder.take()
            if isinstance(outcome, Message):
                if self._admit(outcome):
                    return outcome
                continue
            if isinstance(outcome, Refused):
                raise outcome.error
            if self._closed_by_peer:
                return None
            self._read(deadline)

    def _admit(self, msg: Message) -> bool:
        """Schema check of incoming requests and events; an invalid request is answered."""
        schema = self.schemas.get(msg.type or "") if msg.kind != "reply" else None
        if schema is None:
            return True
        try:
            validate_body(msg.body, schema)
        except PrivsepError as exc:
            msg.close()
            if msg.kind == "request":
                self.reply_error(msg, exc.code, exc.message, exc.data)
            return False
        return True

    def _deadline(self, timeout: Optional[float]) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def recv(self, timeout: Optional[float] = None) -> Message:
        """The next message: those kept while a request waited first, then the socket.

        Raises privsep.unavailable when the broker has closed the connection.
        """
        if self._pending:
            return self._pending.popleft()
        msg = self._next_frame(self._deadline(timeout))
        if msg is None:
            raise PrivsepError("privsep.unavailable", "connection_closed", "broker closed the connection", fatal=True)
        return msg

    def __iter__(self) -> Iterator[Message]:
        """Incoming messages until the broker closes the connection (waits have no timeout)."""
        while True:
            if self._pending:
                yield self._pending.popleft()
                continue
            try:
                msg = self._next_frame(float("inf"))
            except PrivsepError as exc:
                if exc.fatal:
                    raise
                # A refused message from the broker (a broker bug): answer a request, go on.
                if exc.reply_to is not None:
                    self.send({"re": exc.reply_to, "error": {"code": exc.code, "message": exc.message,
                                                             "data": {"reason": exc.reason}}})
                continue
            if msg is None:
                return
            yield msg

    def wait_reply(self, ident: int, timeout: Optional[float] = None) -> Message:
        """Waits for the next reply to ``ident``, keeping other messages for recv()."""
        for kept in self._pending:
            if kept.kind == "reply" and kept.re == ident:
                self._pending.remove(kept)
                return kept
        deadline = self._deadline(timeout)
        while True:
            if len(self._pending) >= PENDING_MAX:
                raise PrivsepError("privsep.internal", "send_queue_full",
                                   f"{PENDING_MAX} messages arrived while waiting; receive them first")
            try:
                msg = self._next_frame(deadline)
            except PrivsepError as exc:
                if exc.fatal or exc.reason in ("timeout", "schema"):
                    raise
                continue  # a refused message is not ours to report here
            if msg is None:
                raise PrivsepError("privsep.unavailable", "connection_closed", "broker closed the connection", fatal=True)
            if msg.kind == "reply" and msg.re == ident:
                return msg
            self._pending.append(msg)

    def request(self, type: str, body: Optional[JSONObject] = None, fds: Sequence[int] = (), *,
                timeout: Optional[float] = None, check: bool = True) -> Message:
        """Sends a request and waits for its reply; an error reply raises ReplyError if ``check``."""
        reply = self.wait_reply(self.send_request(type, body, fds), timeout)
        if check and reply.error is not None:
            reply.close()
            raise ReplyError(reply)
        return reply

    def hello(self, client: Optional[str] = None) -> JSONObject:
        """Sends privsep.hello; applies the announced max_frame; returns the reply body."""
        reply = self.request("privsep.hello", {"protocol": PROTOCOL, "client": client or f"privsep.py/{__version__}"})
        body = reply.body
        if "protocol" in body and (not _is_int(body["protocol"]) or body["protocol"] != PROTOCOL):
            raise self._decoder._fail(_protocol("bad_hello", f"the broker speaks another protocol than {PROTOCOL}"))
        max_frame = body.get("max_frame")
        if max_frame is not None:
            if not _is_int(max_frame) or not FRAME_MIN <= max_frame <= FRAME_LIMIT:
                raise self._decoder._fail(_protocol("bad_hello", f"max_frame not an integer in {FRAME_MIN}..{FRAME_LIMIT}"))
            self.max_frame = max_frame
            self._decoder.max_frame = max_frame
        if isinstance(body.get("helper"), str):
            self.helper = body["helper"]
        return body
