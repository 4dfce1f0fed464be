"""`make run` starts a real gunicorn and worker that answer /healthz (the README's first command)."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.services


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_make_run_serves_healthz(tmp_path):
    port = _free_port()
    env = dict(
        os.environ,
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}",
        # Its own embedded broker, where there is one: not the test worker's tasks.
        FILESYSTEM_BROKER_DIR=str(tmp_path / "broker"),
    )
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        body = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:  # noqa: S310
                    body = json.loads(response.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert body == {"status": "ok", "database": "ok", "broker": "ok", "cache": "ok"}, (
            proc.stdout.read1(20000) if proc.poll() is not None else None
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # Ctrl-C stops everything it started: nothing is left listening.
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_make_run_worker_is_one_process_for_the_local_memory_cache():
    """SPEC: the default cache is "correct for the processes `make run` starts". Pacing (a
    sender's per-minute counter and connection slots) lives in that cache, so the worker must be
    one process: prefork children would each keep their own local-memory copy."""
    import shlex

    script = (ROOT / "bin" / "run-dev").read_text()
    command = " ".join(line.rstrip("\\").strip() for line in script.splitlines() if not line.lstrip().startswith("#"))
    words = shlex.split(command[command.index('"$BIN/celery"') :].split("&")[0])
    options = dict(zip(words, words[1:], strict=False))
    assert "worker" in words
    assert options.get("--pool", options.get("-P")) in {"threads", "solo"} or options.get("--concurrency") == "1", words
