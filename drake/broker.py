"""Celery's Redis broker transport, with one Redis client per connection pool instead of one
per call.

kombu's Redis channel builds a new `redis.Redis` for every publish, every received task (its
entry in the unacked index) and every ack, and building one copies its ~170 response callbacks:
0.15 ms of CPU here, several times per message, on the web side and in the workers
(bench/README.md), as Django's RedisCache did before `drake.cache`. A `redis.Redis` is
thread-safe and holds no connection of its own (the pool does), so one per pool is enough. The
blocking-read client kombu already keeps (`Channel.client`) is left as it is.

Used when CELERY_BROKER_URL is a Redis URL (settings.CELERY_BROKER_TRANSPORT).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool  # A new pool after a disconnect gets a new client.
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(redis.Transport):
    Channel = Channel
