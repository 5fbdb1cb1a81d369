#!/usr/bin/env python3
"""A scripted raw peer for the shell client's tests: runs a command with its end of a
socketpair as fd 3 and performs ACTIONS in order on the other end:

    expect:JSON   read one frame; it must equal JSON (compared as values)
    write:HEX     send these bytes
    close         close the peer's end

Usage: peer.py ACTION... -- command args...
Exit status: the command's, or 1 (with a message) when an expectation failed.
"""
import json
import os
import socket
import sys


def main(argv):
    split = argv.index("--")
    actions, cmd = argv[:split], argv[split + 1:]
    ours, theirs = socket.socketpair()
    ours.settimeout(20)  # a bound, not a synchronisation
    env = dict(os.environ, PRIVSEP_FD="3", PRIVSEP_HELPER="t", PRIVSEP_PROTOCOL="1")
    pid = os.posix_spawnp(cmd[0], cmd, env, file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
    theirs.close()
    failure = None
    try:
        for action in actions:
            kind, _, arg = action.partition(":")
            if kind == "write":
                ours.sendall(bytes.fromhex(arg))
            elif kind == "close":
                ours.close()
            elif kind == "expect":
                head = ours.recv(4, socket.MSG_WAITALL)
                n = int.from_bytes(head, "big")
                body = ours.recv(n, socket.MSG_WAITALL) if n else b""
                if len(head) != 4 or len(body) != n or json.loads(body) != json.loads(arg):
                    failure = f"expected {arg}, got {head.hex()} {body!r}"
                    break
            else:
                failure = f"unknown action {action}"
                break
    except (OSError, ValueError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    # Kept open until the command ends: it sees the end of the stream only from "close".
    _, status = os.waitpid(pid, 0)
    if ours.fileno() >= 0:
        ours.close()
    if failure:
        print(f"peer: {failure}", file=sys.stderr)
        return 1
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
