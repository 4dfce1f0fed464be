"""Celery's Redis broker transport, with one Redis client per connection pool instead of one
per call.

kombu's Redis channel builds a new `redis.Redis` for every publish, every received task (its
entry in the unacked index) and every ack, and building one copies its ~170 response callbacks:
0.15 ms of CPU here, several times per message, on the web side and in the workers
(bench/README.md), as Django's RedisCache did before `drake.cache`. A `redis.Redis` is
thread-safe and holds no connection of its own (the pool does), so one per pool is enough. The
blocking-read client kombu already keeps (`Channel.client`) is left as it is.

Its QoS writes and removes the unacked index of each received message with one script each
instead of a transaction (below); those scripts and the LPUSH of a publish go out as
drake.cache sends its own (`run_script`, `run_command`: without redis-py's machinery around
each command, on a connection borrowed from the channel's pool, which many threads share).

Used when CELERY_BROKER_URL is a Redis URL (settings.CELERY_BROKER_TRANSPORT). The filesystem
broker of development (`filesystem://`) gets FilesystemTransport: kombu's, publishing atomically.

`send_task` publishes a task as `Task.apply_async` does, for any broker, with less of its CPU.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic, time
from typing import Any

from celery import Task
from celery.local import Proxy
from kombu import Producer
from kombu.exceptions import ChannelError
from kombu.transport import filesystem, redis, virtual
from kombu.utils.json import dumps
from kombu.utils.uuid import uuid
from redis.commands.core import Script

from drake.cache import run_command, run_script

# The unacked index kombu keeps for a received, not yet acknowledged message (what restores it
# to the queue after the visibility timeout if its worker died), written and removed as kombu's
# QoS does, each in one atomic script instead of a MULTI/EXEC transaction of two commands:
# every delivery task pays both (bench/README.md). Rejections and restores stay kombu's own.
_APPEND = Script(None, b"redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])")
_REMOVE = Script(None, b"redis.call('ZREM', KEYS[1], ARGV[1]) redis.call('HDEL', KEYS[2], ARGV[1])")


class QoS(redis.QoS):
    # With a `global_keyprefix`, kombu's prefixing client prefixes only a script's first key:
    # kombu's own transactions then (a test shows the restore would miss the entry).

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.global_keyprefix:
            return super().append(message, delivery_tag)
        delivery = message.delivery_info
        entry = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.channel.conn_or_acquire() as client:
            run_script(
                _APPEND, [self.unacked_index_key, self.unacked_key], [time(), delivery_tag, entry], client, shared=True
            )
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if self.channel.global_keyprefix:
            return super().ack(delivery_tag)
        with self.channel.conn_or_acquire() as client:
            run_script(_REMOVE, [self.unacked_index_key, self.unacked_key], [delivery_tag], client, shared=True)
        virtual.QoS.ack(self, delivery_tag)


class Channel(redis.Channel):
    QoS = QoS
    _shared_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool  # A new pool after a disconnect gets a new client.
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = self._shared_client = super()._create_client()
        return client

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        # kombu's own LPUSH, sent as drake.cache sends its scripts: a publish per accepted
        # message when its sender had no prompt pending. Batches, expiring queues and a key
        # prefix (kombu's client adds it to each command) stay kombu's.
        if (
            kwargs.get("_publish_batch") is not None
            or (self._expires and queue in self._expires)
            or self.global_keyprefix
        ):
            return super()._put(queue, message, **kwargs)
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        with self.conn_or_acquire() as client:
            run_command(client, "LPUSH", key, dumps(message), shared=True)
        return None


class Transport(redis.Transport):
    Channel = Channel


class FilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel (the broker `make run` embeds), publishing atomically.

    kombu creates a message's file under its final name, then writes it: a worker listing the
    queue in between took the empty file, failed to parse it and stopped consuming for good
    ("Unrecoverable error: JSONDecodeError"), while the web went on queueing. Seen in the test
    suite's worker on SQLite, every message after it waiting out its test. The file is written
    under a name the queue does not list (`.tmp`), then renamed into place, which is atomic.
    """

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{int(round(monotonic() * 1000))}_{uuid()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(path + ".tmp", "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(path + ".tmp", path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class FilesystemTransport(filesystem.Transport):
    Channel = FilesystemChannel


def send_task(task: Task, args: list[str], *, queue: str | None = None) -> str:
    """Publish `task` with `args` (short ids only) as `task.apply_async(args=args, retry=False)`
    does for a task without routes, to the app's default queue: the same message (a test compares
    them), made by Celery's own `as_task_v2` and sent by its `send_task_message`. Returns the
    task id. Raises what publishing raises (no retries).

    The steps of `apply_async` left out cost more than half of a publish's CPU on the send path
    (0.41 -> 0.19 ms here: bench/README.md): merging options and routing through the task and
    the app, repr-ing the arguments defensively for the headers (ids need no care), and
    declaring the queue for every message, which copies the queue and its exchange each time.
    A virtual transport (Redis, the filesystem) puts a message for the anonymous exchange
    straight into its queue, declared or not; on any other (AMQP) the queue is still declared.
    Also left out, as nothing here uses them: task_routes, task_always_eager, sent events, and
    the parent and root ids of a task published from inside another (only informational).
    """
    # A shared_task is a proxy, which looks the task up again for every attribute read.
    task = task._get_current_object() if isinstance(task, Proxy) else task
    app = task.app
    task_id = uuid()
    message = app.amqp.as_task_v2(
        task_id,
        task.name,
        args=args,
        kwargs={},
        argsrepr=repr(args),
        kwargsrepr="{}",
        time_limit=task.time_limit,
        soft_time_limit=task.soft_time_limit,
        ignore_result=task.ignore_result,
        reply_to=app.thread_oid,
    )
    with _producer(app) as producer:
        declare = [] if isinstance(producer.channel, virtual.Channel) else None
        app.amqp.send_task_message(producer, task.name, message, queue=queue, retry=False, declare=declare)
    return task_id


class _Producers(threading.local):
    """This thread's own producer of each app and broker: {(app, broker_url): (pid, producer)}."""

    def __init__(self) -> None:
        self.held: dict[Any, tuple[int, Producer]] = {}


_producers = _Producers()


@contextmanager
def _producer(app: Any) -> Iterator[Producer]:
    """A producer on a broker connection of this thread's own, kept from one publish to the
    next: taking one from Celery's pool and giving it back (revived, its exchange copied) was a
    quarter of a publish's CPU. One that fails is dropped with its connection; the next publish
    makes another."""
    key = (app, app.conf.broker_url)  # A broker changed (a test points it elsewhere): a new one.
    held = _producers.held.get(key)
    if held is None or held[0] != os.getpid():  # Not a parent's, after a fork.
        held = _producers.held[key] = (os.getpid(), Producer(app.connection_for_write()))
    try:
        yield held[1]
    except BaseException:
        _producers.held.pop(key, None)
        with contextlib.suppress(Exception):
            held[1].connection.close()
        raise
