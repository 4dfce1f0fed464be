"""The Redis broker transport (drake.broker): one Redis client per pool, messages intact."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from kombu import Connection


@pytest.fixture
def redis_broker_url() -> str:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        pytest.skip("the Redis transport needs CELERY_BROKER_URL to be Redis (it is in CI)")
    return url


def test_settings_pick_it_for_a_redis_broker(redis_broker_url):
    from drake.celery import app

    with app.connection_for_write() as connection:
        assert type(connection.transport).__module__ == "drake.broker"


def test_publishes_gets_and_acks_share_one_client(redis_broker_url, monkeypatch):
    made = []
    original = redis.Redis.__init__

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        made.append(1)
        original(self, *args, **kwargs)

    with Connection(redis_broker_url, transport="drake.broker:Transport") as connection:
        queue = connection.SimpleQueue("drake-test-broker")
        queue.clear()
        monkeypatch.setattr(redis.Redis, "__init__", counting)
        rounds, tags = [], []
        for n in range(12):
            queue.put({"n": n})
            message = queue.get(timeout=2)
            assert message.payload == {"n": n}
            message.ack()
            rounds.append(len(made))
            tags.append(message.delivery_tag)
        monkeypatch.undo()
        channel = queue.channel
        with channel.conn_or_acquire() as client:
            assert client.llen("drake-test-broker") == 0
            # Every ack removed its entry from the unacked index.
            assert not any(client.hexists(channel.unacked_key, tag) for tag in tags)
        queue.close()
    # kombu's own channel makes a client per put, get and ack (36 here); this one makes none
    # once the first exists.
    assert rounds[-1] == rounds[0] <= 1
