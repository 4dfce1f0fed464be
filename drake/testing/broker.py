"""Forgetting a broker's queue, as a Redis without persistence does when it restarts."""

from __future__ import annotations

from pathlib import Path

from drake.celery import app


def purge_queue(queue: str = "celery") -> int:
    """Drop every task waiting in `queue`, without any worker seeing them. Returns how many."""
    url = app.conf.broker_url
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url)
        count = client.llen(queue)
        client.delete(queue)
        return int(count)
    if url.startswith("filesystem://"):
        folder = Path(app.conf.broker_transport_options["data_folder_in"])
        files = list(folder.glob(f"*{queue}*.msg"))
        for path in files:
            path.unlink(missing_ok=True)
        return len(files)
    raise NotImplementedError(f"purge_queue does not know {url}")


def queued_payloads(queue: str = "celery") -> list[bytes]:
    """The raw bytes of every task waiting in `queue` (to prove what the broker holds)."""
    url = app.conf.broker_url
    if url.startswith(("redis://", "rediss://")):
        import redis

        return list(redis.Redis.from_url(url).lrange(queue, 0, -1))
    if url.startswith("filesystem://"):
        folder = Path(app.conf.broker_transport_options["data_folder_in"])
        return [path.read_bytes() for path in folder.glob(f"*{queue}*.msg")]
    raise NotImplementedError(f"queued_payloads does not know {url}")
