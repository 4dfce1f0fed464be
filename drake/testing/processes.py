"""Servers started in their own process group, for tests and benchmarks: wait for one, stop one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, *, workers: int = 1, args: tuple[str, ...] = ()) -> Iterator[int]:
    """The web app under gunicorn (the project's gunicorn.conf.py, as deployed, with `workers`
    sync workers) on a free loopback port, in its own process group, with `env` as its whole
    environment: yields the port once it answers HTTP; stops it after. Its output goes to
    `log_path`, shown if it never answers."""
    from drake.testing.smtp import free_port

    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "drake.wsgi:application"]
    command += ["-b", f"127.0.0.1:{port}", "-w", str(workers), "--access-logfile", "/dev/null", *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer:\n{log_path.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield port
    finally:
        stop(proc, timeout=20)
