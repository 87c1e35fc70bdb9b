"""Helpers for tests that run `labctl` as a technician would: real subprocesses."""

from __future__ import annotations

import subprocess
import sys
import time

LABCTL = [sys.executable, "-m", "labctl.cli"]


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 90.0) -> str:
    """Read a process's stdout lines until one contains `marker`; fail with what it printed."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} from {proc.args}; output: {''.join(seen)}; "
                         f"stderr: {proc.stderr.read()[-2000:]}")
