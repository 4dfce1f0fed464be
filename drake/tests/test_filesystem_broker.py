"""The filesystem broker `make run` embeds (drake.broker.FilesystemTransport): a worker never
takes a message's file before it is whole.

kombu's own transport creates the file under its final name, then writes it. A worker listing
the queue in between read it empty, could not parse it, and stopped consuming for good
("Unrecoverable error: JSONDecodeError"): seen in the suite's worker on SQLite, where every
delivery test after it then timed out. The window is a few microseconds, so the tests open it
wide: a consumer takes from the queue at the moment the publisher is about to write the
message's bytes, and what kombu's channel does there is shown beside ours.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from kombu.transport import filesystem

from drake import broker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "queue").mkdir()
    folder = str(tmp_path / "queue")
    return {"data_folder_in": folder, "data_folder_out": folder, "control_folder": str(tmp_path)}


class _TakenBeforeWritten:
    """A file being written whose write() first lets a consumer take from the queue."""

    def __init__(self, file: Any, consume: Any) -> None:
        self._file, self._consume = file, consume

    def write(self, data: bytes) -> int:
        self._consume()
        return self._file.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> _TakenBeforeWritten:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def _publish_while_a_worker_takes(module: Any, transport: type, options: dict, monkeypatch: Any) -> list[object]:
    """Publish one message with a consumer taking from the queue just before its bytes are
    written: what the consumer got then, and afterwards."""
    seen: list[object] = []
    with Connection(transport=transport, transport_options=options) as consumer:

        def take() -> None:
            try:
                seen.append(consumer.default_channel._get("q"))
            except filesystem.Empty:
                seen.append("nothing yet")
            except ValueError as exc:  # JSONDecodeError: a file taken before it was whole.
                seen.append(type(exc).__name__)

        def opening(*args: Any, **kwargs: Any) -> Any:
            return _TakenBeforeWritten(builtins.open(*args, **kwargs), take)

        monkeypatch.setattr(module, "open", opening, raising=False)
        with Connection(transport=transport, transport_options=options) as publisher:
            publisher.default_channel._put("q", {"body": "hello"})
        monkeypatch.undo()
        take()
    return seen


def test_a_message_is_never_taken_before_it_is_whole(queue, monkeypatch):
    seen = _publish_while_a_worker_takes(broker, broker.FilesystemTransport, queue, monkeypatch)
    assert seen == ["nothing yet", {"body": "hello"}]
    assert not list(Path(queue["data_folder_in"]).iterdir())  # No .tmp left behind either.


def test_kombus_own_channel_hands_out_the_empty_file(queue, monkeypatch):
    """What the worker met: the message read empty (and, with it, lost)."""
    seen = _publish_while_a_worker_takes(filesystem, filesystem.Transport, queue, monkeypatch)
    assert seen == ["JSONDecodeError", "nothing yet"]


def test_the_settings_pick_it_for_the_filesystem_broker():
    """What `make run` gets with no CELERY_BROKER_URL (a process of its own: CI's is Redis)."""
    env = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"}
    script = (
        "import django; django.setup(); from drake.celery import app\n"
        "with app.connection_for_write() as c: print(type(c.transport).__module__, type(c.transport).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "drake.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["drake.broker", "FilesystemTransport"], result.stderr


def test_a_test_runs_broker_folder_is_not_make_runs():
    """A test run and `make run` in one checkout read one broker folder (var/broker): each
    one's worker took the other's delivery tasks. The test run's is its own, in every process
    it starts (they inherit the environment drake.testing.environment sets)."""
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in'])"
    )
    env = {**os.environ, "CELERY_BROKER_URL": "filesystem://"}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    folder = Path(out.stdout.strip())
    assert folder.is_relative_to(ROOT / "var" / "test-broker"), folder
    # And make run's, without the plugin's variable, is var/broker as before.
    env.pop("FILESYSTEM_BROKER_DIR")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == ROOT / "var" / "broker" / "queue"
