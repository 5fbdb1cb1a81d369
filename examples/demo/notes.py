#!/usr/bin/python3
"""notes: the demo's Python helper. Receives demo.note events and serves demo.notes."""
import os
import sys

sys.path.insert(0, os.environ.get("PRIVSEP_PYTHON", "/opt/privsep/clients/python"))
import privsep  # noqa: E402


def sandbox_state() -> str:
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    try:
        open("/written-by-notes", "w").close()
        root = "WRITABLE"
    except OSError as error:
        root = error.strerror
    return (f"sandbox: uid={os.getuid()} gid={os.getgid()} NoNewPrivs={fields.get('NoNewPrivs')} "
            f"Seccomp={fields.get('Seccomp')} root={root}")


def main() -> int:
    print(sandbox_state(), flush=True)
    notes = []
    with privsep.Connection.from_env() as conn:
        conn.hello(client="notes.py/1")
        for msg in conn:
            if not isinstance(msg, privsep.Message):
                continue
            if msg.kind == "event" and msg.type == "privsep.shutdown":
                break
            if msg.kind == "event" and msg.type == "demo.note":
                notes.append(msg.body["text"])
                conn.log("info", f"noted: {msg.body['text']!r} (from {msg.sender})")
            elif msg.kind == "request" and msg.type == "demo.notes":
                reply = {"count": len(notes)}
                if notes:
                    reply["last"] = notes[-1]
                conn.reply(msg, reply)
            elif msg.kind == "request":
                conn.reply_error(msg, "privsep.unknown_type", f"{msg.type} is not served here")
    return 0


if __name__ == "__main__":
    sys.exit(main())
