"""Servers started in their own process group, for tests and benchmarks: wait for one, stop one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request


def wait_for_http(url: str, timeout: float = 30) -> None:
    """Return once `url` answers (any HTTP status); raise RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310  (loopback URLs of our own)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group (a graceful stop), then SIGKILL it if it is still there."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
