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


def _received(connection, name, payload):
    """A fresh queue `name` with `payload` put on it and received, not yet acknowledged."""
    queue = connection.SimpleQueue(name)
    queue.clear()
    queue.put(payload)
    return queue, queue.get(timeout=2)


def test_send_task_publishes_what_apply_async_publishes(redis_broker_url):
    import base64
    import json

    from drake.broker import send_task
    from relay.tasks import deliver

    queue = "drake-test-send-task"
    client = redis.Redis.from_url(redis_broker_url)
    client.delete(queue)
    try:
        deliver.apply_async(args=["msg_" + "a" * 24], retry=False, queue=queue)
        task_id = send_task(deliver, ["msg_" + "b" * 24], queue=queue)
        ours, celerys = (json.loads(raw) for raw in client.lrange(queue, 0, -1))  # LPUSH: newest first
    finally:
        client.delete(queue)
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"] == task_id
    for message in (ours, celerys):
        for name in ("id", "root_id"):
            message["headers"].pop(name)
        for name in ("correlation_id", "delivery_tag"):
            message["properties"].pop(name)
    assert ours["headers"].pop("argsrepr") == "['msg_bbbbbbbbbbbbbbbbbbbbbbbb']"
    assert celerys["headers"].pop("argsrepr") == "['msg_aaaaaaaaaaaaaaaaaaaaaaaa']"
    assert ours["headers"] == celerys["headers"]
    assert ours["properties"] == celerys["properties"]
    assert ours["content-type"] == celerys["content-type"] == "application/json"
    assert ours["headers"]["timelimit"] == [deliver.time_limit, deliver.soft_time_limit]
    body = json.loads(base64.b64decode(ours["body"]))
    assert body == [["msg_" + "b" * 24], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]


def test_a_received_message_is_in_the_unacked_index_until_acked_as_with_kombus_own(redis_broker_url):
    import json
    import time

    from kombu.transport.redis import Transport as KombusTransport

    from drake.broker import Transport

    seen = {}
    for transport in (KombusTransport, Transport):
        with Connection(redis_broker_url, transport=transport) as connection:
            queue, message = _received(connection, "drake-test-unacked", {"n": 1})
            channel = queue.channel
            assert (type(channel.qos).__module__ == "drake.broker") == (transport is Transport)
            with channel.conn_or_acquire() as client:
                entry = client.hget(channel.unacked_key, message.delivery_tag)
                score = client.zscore(channel.unacked_index_key, message.delivery_tag)
                raw, exchange, routing_key = json.loads(entry)
                assert raw["properties"]["delivery_tag"] == message.delivery_tag
                assert score is not None and abs(score - time.time()) < 60
                seen[transport] = (sorted(raw), sorted(raw["properties"]), exchange, routing_key)
                message.ack()
                assert client.hget(channel.unacked_key, message.delivery_tag) is None
                assert client.zscore(channel.unacked_index_key, message.delivery_tag) is None
            queue.close()
    assert seen[Transport] == seen[KombusTransport]


def test_an_unacked_message_of_a_lost_worker_is_restored_to_its_queue(redis_broker_url):
    from drake.broker import Transport

    with Connection(redis_broker_url, transport=Transport) as connection:
        queue, message = _received(connection, "drake-test-restore", {"n": 2})
        channel = queue.channel
        # What kombu does for a message whose worker never acked it once the visibility timeout
        # passed (restore_visible) or at shutdown: back on the queue, out of the index.
        channel.qos.restore_by_tag(message.delivery_tag)
        with channel.conn_or_acquire() as client:
            assert client.hget(channel.unacked_key, message.delivery_tag) is None
        again = queue.get(timeout=2)
        assert again.payload == {"n": 2}
        again.ack()
        queue.close()


@pytest.mark.parametrize("prefix", ["", "drake-test-prefix:"])
def test_an_unacked_message_is_restored_with_or_without_a_global_key_prefix(redis_broker_url, prefix):
    from drake.broker import Transport

    options = {"global_keyprefix": prefix} if prefix else {}
    with Connection(redis_broker_url, transport=Transport, transport_options=options) as connection:
        queue, message = _received(connection, "drake-test-restore-prefix", {"n": 3})
        queue.channel.qos.restore_by_tag(message.delivery_tag)  # Its worker died: restore it.
        again = queue.get(timeout=2)
        assert again.payload == {"n": 3}
        again.ack()
        with queue.channel.conn_or_acquire() as client:
            assert client.hget(queue.channel.unacked_key, again.delivery_tag) is None
        queue.close()


def test_a_publish_after_the_broker_dropped_the_connection_still_arrives(redis_broker_url, settings):
    from drake.broker import _producer, send_task
    from drake.celery import app
    from relay.tasks import deliver

    queue = "drake-test-reconnect"
    client = redis.Redis.from_url(redis_broker_url)
    client.delete(queue)
    original = app.conf.broker_url
    app.conf.broker_url = redis_broker_url
    try:
        send_task(deliver, ["msg_" + "a" * 24], queue=queue)  # This thread's producer, connected.
        with _producer(app) as producer:
            pool = producer.channel.pool
        lent = pool.get_connection()  # The one the next LPUSH borrows (the last given back).
        lent.send_command("CLIENT", "ID")
        killed = lent.read_response()
        pool.release(lent)
        client.client_kill_filter(_id=killed)  # A broker restart, as that connection sees it.
        send_task(deliver, ["msg_" + "b" * 24], queue=queue)
        assert client.llen(queue) == 2
    finally:
        app.conf.broker_url = original
        client.delete(queue)


def test_acks_from_more_threads_than_the_channels_pool_holds_all_go_through(redis_broker_url):
    """One channel used from more threads than kombu's pool holds (max_connections, 10 by
    default), as Celery's shared producers are handed from thread to thread: a connection kept
    by each thread for good ran the pool out (MaxConnectionsError) at the eleventh."""
    import threading

    from drake.broker import Transport

    with Connection(redis_broker_url, transport=Transport) as connection:
        queue = connection.SimpleQueue("drake-test-many-threads")
        queue.clear()
        messages = []
        for n in range(16):
            queue.put({"n": n})
            messages.append(queue.get(timeout=2))
        errors = []

        def ack(message):  # noqa: ANN001, ANN202
            try:
                message.ack()
            except Exception as exc:  # noqa: BLE001 (collected for the assertion)
                errors.append(exc)

        for message in messages:  # One thread after another: the number of threads counts.
            thread = threading.Thread(target=ack, args=(message,))
            thread.start()
            thread.join()
        with queue.channel.conn_or_acquire() as client:
            left = [m.delivery_tag for m in messages if client.hexists(queue.channel.unacked_key, m.delivery_tag)]
        queue.close()
    assert errors == []
    assert left == []
