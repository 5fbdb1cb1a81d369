"""What the hostile and soak suites read of a running broker: its status over the control
socket (`privsep status --json`), its open descriptors and its resident memory. Stdlib only."""

import json
import os
import subprocess


def status(privsep, control):
    """The broker's status object, or None when the control socket does not answer."""
    out = subprocess.run([privsep, "status", "--json", "--socket", control], capture_output=True, timeout=10)
    return json.loads(out.stdout) if out.returncode == 0 else None


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid):
    """VmRSS in KiB, or -1 when the process is gone."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1
