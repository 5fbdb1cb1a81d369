#!/usr/bin/env python3
"""Writes Tests/Conformance/vectors/*.json, the wire protocol v1 conformance vectors.

The vectors are the product; this script only keeps them reproducible. Run it from anywhere:
    python3 Tests/Conformance/generate.py
See README.md in this directory for the format.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_ID = 2**53 - 1


def raw(text):
    """One frame around exact body bytes (str is UTF-8 encoded, bytes taken as is)."""
    body = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack(">I", len(body)) + body


def frame(obj):
    """One frame around the compact JSON of obj."""
    return raw(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


def padded(size):
    """A frame whose body is exactly `size` bytes: {"type":"a.b","body":{"pad":"xxx"}}."""
    body = '{"type":"a.b","body":{"pad":"' + "x" * (size - 32) + '"}}'
    assert len(body) == size
    return raw(body)


def ok(*messages):
    return {"messages": list(messages), "error": None}


def msg(envelope, fds=0):
    return {"envelope": envelope, "fds": fds}


def refused(reason, reply_to=None):
    return {"refused": {"code": "privsep.invalid", "reason": reason, "reply_to": reply_to}}


def fatal(reason, *messages, code="privsep.protocol"):
    return {"messages": list(messages), "error": {"code": code, "reason": reason}}


def case(name, description, data, expect, **extra):
    c = {"name": name, "description": description}
    c.update(extra)
    c["input"] = data.hex()
    c["expect"] = expect
    return c


PING = {"type": "privsep.ping", "id": 1, "body": {"seq": 1}}
EVENT = {"type": "demo.tick", "body": {}}


def framing():
    ping = frame(PING)
    two = frame(PING) + frame({"type": "demo.tick"})
    nested_ok = raw('{"type":"a.b","body":{"x":' + "[" * 62 + "]" * 62 + "}}")
    cases = [
        case("empty-stream", "No bytes, then end of stream: nothing delivered, no error.", b"", ok()),
        case("one-frame", "A request in one read.", ping, ok(msg(PING))),
        case("smallest-frame", "Length 2 is legal; `{}` is a frame but not an envelope (no type, no re).",
             raw("{}"), ok(refused("bad_kind"))),
        case("length-zero", "Length prefix 0 is below the minimum of 2.", bytes(4), fatal("frame_too_short")),
        case("length-one", "Length prefix 1 is below the minimum of 2; rejected at the prefix.",
             struct.pack(">I", 1) + b"{", fatal("frame_too_short")),
        case("length-ffffffff", "A 4 GiB length prefix is rejected before any body byte is stored.",
             b"\xff\xff\xff\xff", fatal("frame_too_large", code="privsep.too_large")),
        case("length-max-plus-one", "Default max_frame is 1 MiB; 1 MiB + 1 is rejected at the prefix.",
             struct.pack(">I", 2**20 + 1), fatal("frame_too_large", code="privsep.too_large")),
        case("length-max-exact", "A frame of exactly max_frame bytes (max_frame 64 here) is accepted.",
             padded(64), ok(msg({"type": "a.b", "body": {"pad": "x" * 32}})), max_frame=64),
        case("length-max-plus-one-small", "With max_frame 64, a 65-byte frame is too large.",
             padded(65),
             fatal("frame_too_large", code="privsep.too_large"), max_frame=64),
        case("truncated-header", "The stream ends after 3 of the 4 prefix bytes.", b"\x00\x00\x00",
             fatal("truncated_frame")),
        case("truncated-body", "The prefix announces 20 bytes; the stream ends after 10.",
             struct.pack(">I", 20) + b'{"type":"a', fatal("truncated_frame")),
        case("message-then-truncated", "A whole frame, then a cut-off one: the first is delivered.",
             ping + ping[:9], fatal("truncated_frame", msg(PING))),
        case("two-frames-one-read", "Two frames in one read give two messages in order.",
             two, ok(msg(PING), msg({"type": "demo.tick", "body": {}}))),
        case("split-every-byte", "One frame delivered one byte per read.",
             ping, ok(msg(PING)), chunks=list(range(1, len(ping)))),
        case("split-in-prefix", "The second frame's length prefix is split across reads.",
             two, ok(msg(PING), msg({"type": "demo.tick", "body": {}})), chunks=[len(frame(PING)) + 2]),
        case("message-then-bad-length", "A whole frame, then length 0: the first is delivered, then the error.",
             ping + bytes(4), fatal("frame_too_short", msg(PING))),
        case("whitespace-around-object", "JSON whitespace around the object is part of the frame and legal.",
             raw(' \n{"type":"a.b"}\t '), ok(msg({"type": "a.b", "body": {}}))),
        case("depth-64", "Nesting depth 64 (the object is depth 1) is accepted.",
             nested_ok, ok(msg({"type": "a.b", "body": {"x": json.loads("[" * 62 + "]" * 62)}}))),
    ]
    return "framing", "Length prefixes, limits, reads split anywhere, end of stream.", cases


def json_area():
    deep = '{"type":"a.b","body":{"x":' + "[" * 63 + "]" * 63 + "}}"
    cases = [
        case("syntax-trailing-comma", "A trailing comma breaks RFC 8259.", raw('{"type":"a.b",}'),
             fatal("invalid_json")),
        case("invalid-utf8", "A string holding the byte 0xFF.", raw(b'{"type":"a.b","body":{"s":"\xff"}}'),
             fatal("invalid_json")),
        case("overlong-utf8", "An overlong encoding of '/' (C0 AF).", raw(b'{"type":"a.b","body":{"s":"\xc0\xaf"}}'),
             fatal("invalid_json")),
        case("utf8-surrogate-bytes", "UTF-8 bytes of a surrogate code point (ED A0 80).",
             raw(b'{"type":"a.b","body":{"s":"\xed\xa0\x80"}}'), fatal("invalid_json")),
        case("lone-surrogate-escape", "A \\ud800 escape with no low half.", raw('{"type":"a.b","body":{"s":"\\ud800"}}'),
             fatal("invalid_json")),
        case("paired-surrogate-escape", "A valid surrogate pair escape is fine.",
             raw('{"type":"a.b","body":{"s":"\\ud83d\\ude00"}}'), ok(msg({"type": "a.b", "body": {"s": "\U0001F600"}}))),
        case("duplicate-key-top", "A duplicate top-level key.", raw('{"type":"a.b","type":"a.c"}'), fatal("invalid_json")),
        case("duplicate-key-nested", "A duplicate key inside body.", raw('{"type":"a.b","body":{"k":1,"k":2}}'),
             fatal("invalid_json")),
        case("duplicate-key-escaped", "Keys equal after unescaping are duplicates.",
             raw('{"type":"a.b","body":{"k":1,"\\u006b":2}}'), fatal("invalid_json")),
        case("depth-65", "Nesting depth 65 exceeds the limit of 64.", raw(deep), fatal("invalid_json")),
        case("nan", "NaN is not JSON.", raw('{"type":"a.b","body":{"n":NaN}}'), fatal("invalid_json")),
        case("leading-zero", "Numbers may not have leading zeros.", raw('{"type":"a.b","id":01}'), fatal("invalid_json")),
        case("trailing-data", "Two values in one frame.", raw('{"type":"a.b"}{}'), fatal("invalid_json")),
        case("bom", "A byte-order mark before the object.", raw(b'\xef\xbb\xbf{"type":"a.b"}'), fatal("invalid_json")),
        case("not-object-array", "A frame holding an array.", raw("[]"), fatal("not_object")),
        case("not-object-string", "A frame holding a string.", raw('"privsep"'), fatal("not_object")),
        case("not-object-number", "A frame holding a number.", raw("12"), fatal("not_object")),
        case("not-object-null", "A frame holding null.", raw("null"), fatal("not_object")),
        case("number-exact", "Integers keep their exact value; 1.0 is the integer 1.",
             raw('{"type":"a.b","id":1.0,"body":{"big":9007199254740993,"d":0.1}}'),
             ok(msg({"type": "a.b", "id": 1, "body": {"big": 9007199254740993, "d": 0.1}}))),
    ]
    return "json", "I-JSON (RFC 7493) inside frames: UTF-8, surrogates, duplicates, depth, non-objects.", cases


def envelope_area():
    def one(name, description, obj_or_text, expect, **extra):
        data = raw(obj_or_text) if isinstance(obj_or_text, str) else frame(obj_or_text)
        return case(name, description, data, expect, **extra)

    cases = [
        one("request", "type + id: a request.", PING, ok(msg(PING))),
        one("request-default-body", "body defaults to {}.", {"type": "a.b", "id": 7}, ok(msg({"type": "a.b", "id": 7, "body": {}}))),
        one("event", "type without id: an event.", EVENT, ok(msg(EVENT))),
        one("reply", "re + body: a successful reply.", {"re": 1, "body": {"ok": True}}, ok(msg({"re": 1, "body": {"ok": True}}))),
        one("reply-default-body", "A reply with neither body nor error has body {}.", {"re": 1}, ok(msg({"re": 1, "body": {}}))),
        one("reply-more", "more: true on a successful reply (streaming).", {"re": 3, "body": {}, "more": True},
            ok(msg({"re": 3, "body": {}, "more": True}))),
        one("error-reply", "re + error {code, message}.", {"re": 2, "error": {"code": "privsep.denied", "message": "no"}},
            ok(msg({"re": 2, "error": {"code": "privsep.denied", "message": "no"}}))),
        one("error-reply-data", "error.data may be any JSON value.",
            {"re": 2, "error": {"code": "privsep.invalid", "message": "bad", "data": [{"instance": "/x", "schema": "/properties/x"}]}},
            ok(msg({"re": 2, "error": {"code": "privsep.invalid", "message": "bad", "data": [{"instance": "/x", "schema": "/properties/x"}]}}))),
        one("error-reply-service-code", "Services add their own dotted codes.",
            {"re": 2, "error": {"code": "privsep.not_found", "message": "gone"}},
            ok(msg({"re": 2, "error": {"code": "privsep.not_found", "message": "gone"}}))),
        one("type-many-segments", "Digits and underscores after the first letter of each segment.",
            {"type": "files_v2.open.read_only9"}, ok(msg({"type": "files_v2.open.read_only9", "body": {}}))),
        one("id-max", "id 2^53-1 is the largest legal id.", {"type": "a.b", "id": MAX_ID},
            ok(msg({"type": "a.b", "id": MAX_ID, "body": {}}))),
        one("re-max", "re 2^53-1 is legal.", {"re": MAX_ID}, ok(msg({"re": MAX_ID, "body": {}}))),
        one("unknown-member", "Any top-level member outside the envelope is refused.",
            {"type": "a.b", "id": 4, "x": 1}, ok(refused("unknown_member", 4))),
        one("unknown-member-first", "Unknown members are checked before member shapes.",
            {"type": "A", "id": 0, "x": 1}, ok(refused("unknown_member"))),
        one("type-uppercase", "Upper case is not allowed.", {"type": "Privsep.ping", "id": 4}, ok(refused("bad_type", 4))),
        one("type-one-segment", "A type needs at least two segments.", {"type": "ping"}, ok(refused("bad_type"))),
        one("type-empty-segment", "Empty segments are not allowed.", {"type": "a..b"}, ok(refused("bad_type"))),
        one("type-trailing-dot", "A trailing dot is not allowed.", {"type": "a.b."}, ok(refused("bad_type"))),
        one("type-leading-digit", "A segment starts with a letter.", {"type": "a.1b"}, ok(refused("bad_type"))),
        one("type-dash", "A dash is not allowed.", {"type": "a.b-c"}, ok(refused("bad_type"))),
        one("type-empty", "The empty string is not a type.", {"type": ""}, ok(refused("bad_type"))),
        one("type-not-string", "type must be a string.", {"type": 5}, ok(refused("bad_type"))),
        one("type-non-ascii", "Only ASCII letters, digits and underscores.", {"type": "a.\u00e9"}, ok(refused("bad_type"))),
        one("id-zero", "id 0 is out of range.", {"type": "a.b", "id": 0}, ok(refused("bad_id"))),
        one("id-negative", "A negative id is out of range.", {"type": "a.b", "id": -1}, ok(refused("bad_id"))),
        one("id-2-53", "id 2^53 is out of range.", {"type": "a.b", "id": 2**53}, ok(refused("bad_id"))),
        one("id-huge", "An id beyond 64 bits.", '{"type":"a.b","id":123456789012345678901234567890}', ok(refused("bad_id"))),
        one("id-fraction", "id must be an integer.", '{"type":"a.b","id":1.5}', ok(refused("bad_id"))),
        one("id-string", "id must be a number.", {"type": "a.b", "id": "1"}, ok(refused("bad_id"))),
        one("re-zero", "re 0 is out of range.", {"re": 0}, ok(refused("bad_re"))),
        one("re-string", "re must be an integer.", {"re": "1"}, ok(refused("bad_re"))),
        one("body-array", "body must be an object.", {"type": "a.b", "id": 9, "body": []}, ok(refused("bad_body", 9))),
        one("body-null", "body must be an object.", {"type": "a.b", "body": None}, ok(refused("bad_body"))),
        one("reply-with-type", "A reply has no type.", {"re": 1, "type": "a.b", "body": {}}, ok(refused("bad_kind"))),
        one("reply-with-id", "A reply has no id.", {"re": 1, "id": 2, "body": {}}, ok(refused("bad_kind"))),
        one("no-type-no-re", "An id alone is no kind of message.", {"id": 5}, ok(refused("bad_kind", 5))),
        one("body-and-error", "A reply has body or error, not both.",
            {"re": 1, "body": {}, "error": {"code": "privsep.internal", "message": "x"}}, ok(refused("bad_kind"))),
        one("error-on-request", "error belongs on replies only.",
            {"type": "a.b", "id": 6, "error": {"code": "privsep.internal", "message": "x"}}, ok(refused("bad_kind", 6))),
        one("error-not-object", "error must be an object.", {"re": 1, "error": "boom"}, ok(refused("bad_error"))),
        one("error-missing-message", "error needs message.", {"re": 1, "error": {"code": "privsep.internal"}}, ok(refused("bad_error"))),
        one("error-missing-code", "error needs code.", {"re": 1, "error": {"message": "x"}}, ok(refused("bad_error"))),
        one("error-code-not-string", "error.code must be a string.", {"re": 1, "error": {"code": 5, "message": "x"}}, ok(refused("bad_error"))),
        one("error-code-malformed", "error.code must be a dotted lower-case name.",
            {"re": 1, "error": {"code": "Denied", "message": "x"}}, ok(refused("bad_error"))),
        one("error-message-not-string", "error.message must be a string.",
            {"re": 1, "error": {"code": "privsep.internal", "message": 1}}, ok(refused("bad_error"))),
        one("error-extra-member", "error has only code, message and data.",
            {"re": 1, "error": {"code": "privsep.internal", "message": "x", "hint": "y"}}, ok(refused("bad_error"))),
        one("more-on-request", "more belongs on replies only.", {"type": "a.b", "id": 8, "more": True}, ok(refused("bad_more", 8))),
        one("more-on-event", "more belongs on replies only.", {"type": "a.b", "more": True}, ok(refused("bad_more"))),
        one("more-false", "more is true or absent.", {"re": 1, "body": {}, "more": False}, ok(refused("bad_more"))),
        one("more-number", "more is true or absent.", {"re": 1, "body": {}, "more": 1}, ok(refused("bad_more"))),
        one("more-on-error", "A failed reply is final.",
            {"re": 1, "error": {"code": "privsep.internal", "message": "x"}, "more": True}, ok(refused("bad_more"))),
        one("from-by-helper", "A helper that sends from commits a protocol error.",
            {"type": "a.b", "from": "broker"}, fatal("from_forbidden"), role="helper"),
        one("from-by-helper-wrong-type", "from from a helper is fatal whatever its value.",
            {"type": "a.b", "from": 1}, fatal("from_forbidden"), role="helper"),
        one("from-by-broker", "The broker names the sender.", {"type": "a.b", "from": "files"},
            ok(msg({"type": "a.b", "body": {}, "from": "files"})), role="broker"),
        one("from-by-broker-empty", "from must be a non-empty string.", {"type": "a.b", "from": ""},
            ok(refused("bad_from")), role="broker"),
        one("from-by-broker-number", "from must be a string.", {"type": "a.b", "from": 3}, ok(refused("bad_from")), role="broker"),
        case("refused-then-valid", "A refused message leaves the stream usable.",
             frame({"type": "a.b", "id": 1, "zzz": 0}) + frame(PING), ok(refused("unknown_member", 1), msg(PING))),
    ]
    return "envelope", "Envelope members, kinds, ranges and the sender role.", cases


def fds_area():
    with_one = frame({"type": "files.open", "id": 1, "body": {}, "fds": 1})
    env_one = {"type": "files.open", "id": 1, "body": {}, "fds": 1}
    with_two = frame({"re": 5, "body": {}, "fds": 2})
    eight = frame({"type": "a.b", "fds": 8})
    plain = frame(PING)
    cases = [
        case("one-fd", "A frame declaring 1 fd, with 1 fd on its read.", with_one, ok(msg(env_one, 1)),
             fds=[{"chunk": 0, "count": 1}]),
        case("two-fds-reply", "A reply carrying 2 fds.", with_two, ok(msg({"re": 5, "body": {}, "fds": 2}, 2)),
             fds=[{"chunk": 0, "count": 2}]),
        case("eight-fds", "8 is the most a frame may carry.", eight, ok(msg({"type": "a.b", "body": {}, "fds": 8}, 8)),
             fds=[{"chunk": 0, "count": 8}]),
        case("fds-with-first-byte-only", "The fds come with the read holding the prefix; the body follows later.",
             with_one, ok(msg(env_one, 1)), chunks=[2, 20], fds=[{"chunk": 0, "count": 1}]),
        case("plain-then-fd-frame-one-read", "One read returns a plain frame and then the fd frame with its fd: "
             "the fds belong to the last frame starting in the read.",
             plain + with_one, ok(msg(PING), msg(env_one, 1)), fds=[{"chunk": 0, "count": 1}]),
        case("fd-frame-starts-mid-read", "A read ends a plain frame and starts the fd frame; the fd frame ends later.",
             plain + with_one, ok(msg(PING), msg(env_one, 1)), chunks=[len(plain) + 10], fds=[{"chunk": 0, "count": 1}]),
        case("fd-frame-then-plain-next-read", "The fd frame, then a plain frame in a later read.",
             with_one + plain, ok(msg(env_one, 1), msg(PING)), chunks=[len(with_one)], fds=[{"chunk": 0, "count": 1}]),
        case("declared-none-arrived", "fds: 1 but no descriptor came.", with_one, fatal("fds_missing")),
        case("declared-two-one-arrived", "fds: 2 but 1 descriptor came.", with_two, fatal("fds_mismatch"),
             fds=[{"chunk": 0, "count": 1}]),
        case("declared-one-two-arrived", "fds: 1 but 2 descriptors came.", with_one, fatal("fds_mismatch"),
             fds=[{"chunk": 0, "count": 2}]),
        case("undeclared-fd", "A frame without fds, yet a descriptor came with it.", plain, fatal("fds_unclaimed"),
             fds=[{"chunk": 0, "count": 1}]),
        case("fd-on-continuation-read", "A descriptor came with a read where no frame starts (mid-body of a "
             "frame without fds): the frame is delivered, then the unclaimed fd is fatal at the end of that read.",
             plain, fatal("fds_unclaimed", msg(PING)), chunks=[10], fds=[{"chunk": 1, "count": 1}]),
        case("fd-for-earlier-frame-in-read", "Frame A declares the fd but a plain frame B starts later in the same "
             "read: the read's fds can only be B's, so A's are missing.",
             with_one + plain, fatal("fds_missing"), fds=[{"chunk": 0, "count": 1}]),
        case("fd-arrives-late", "The fd frame's prefix came in one read and its fd with the next: its fds are "
             "missing (they must arrive with the frame's first byte).",
             with_one, fatal("fds_missing"), chunks=[3], fds=[{"chunk": 1, "count": 1}]),
        case("second-batch-mid-frame", "The frame's fd came with its first byte; another fd arrives mid-body, where "
             "no frame starts: fatal at the end of that read, before the frame completes.",
             with_one, fatal("fds_unclaimed"), chunks=[10, 20],
             fds=[{"chunk": 0, "count": 1}, {"chunk": 1, "count": 1}]),
        case("fds-zero", "fds must be 1..8; 0 is a protocol error.", frame({"type": "a.b", "fds": 0}), fatal("bad_fds")),
        case("fds-nine", "fds must be 1..8.", frame({"type": "a.b", "fds": 9}), fatal("bad_fds")),
        case("fds-string", "fds must be an integer.", frame({"type": "a.b", "fds": "1"}), fatal("bad_fds")),
        case("fds-fraction", "fds must be an integer.", raw('{"type":"a.b","fds":1.5}'), fatal("bad_fds")),
        case("refused-with-fd", "A refused message's fds are closed, and the stream goes on.",
             frame({"type": "a.b", "x": 1, "fds": 1}) + plain, ok(refused("unknown_member"), msg(PING)),
             chunks=[len(frame({"type": "a.b", "x": 1, "fds": 1}))], fds=[{"chunk": 0, "count": 1}]),
        case("from-by-helper-with-fd", "from from a helper is fatal even with fds attached.",
             frame({"type": "a.b", "from": "x", "fds": 1}), fatal("from_forbidden"), fds=[{"chunk": 0, "count": 1}]),
        case("fds-by-broker", "The broker forwards fds the same way.",
             frame({"type": "a.b", "from": "files", "fds": 1}),
             ok(msg({"type": "a.b", "body": {}, "from": "files", "fds": 1}, 1)), role="broker",
             fds=[{"chunk": 0, "count": 1}]),
    ]
    return "fds", "fd passing: attribution of SCM_RIGHTS descriptors to frames.", cases


def main():
    os.makedirs(os.path.join(HERE, "vectors"), exist_ok=True)
    total = 0
    for area, description, cases in (framing(), json_area(), envelope_area(), fds_area()):
        names = [c["name"] for c in cases]
        assert len(names) == len(set(names)), area
        doc = {"format": "privsep-wire-vectors/1", "area": area, "description": description, "cases": cases}
        path = os.path.join(HERE, "vectors", area + ".json")
        with open(path, "w", encoding="utf-8") as out:
            json.dump(doc, out, indent=1, ensure_ascii=True)
            out.write("\n")
        total += len(cases)
        print(f"{path}: {len(cases)} cases")
    print(f"{total} cases")


if __name__ == "__main__":
    main()
