"""Django's RedisCache, with one Redis client per connection pool instead of one per call, and
the counters of the hot paths (rate limits, pacing, delivery prompts) as one script each.

Django's RedisCacheClient builds a new `redis.Redis` for every cache operation, and building one
copies its ~170 response callbacks: 0.37 ms of CPU per call, five calls per API request (rate
limits), more than the Redis round trips themselves (bench/README.md). A `redis.Redis` is
thread-safe and holds no connection of its own (the pool does), so one per pool is enough.
The scripts, and the broker's few commands (drake.broker), skip redis-py's per-command
machinery (`run_script`, `run_command`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Each a single command (EVALSHA), atomic on the server: a pipeline or a transaction (MULTI,
# the commands, EXEC) made the same round trip for up to twice the client's CPU (bench/README.md).
# redis-py's Script loads a script again when Redis answers NOSCRIPT (after a restart).
_TALLY = Script(
    None,
    b"redis.call('SET', KEYS[1], 0, 'NX', 'EX', ARGV[2]) local n = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    b"if KEYS[2] and n > tonumber(ARGV[1]) then redis.call('SET', KEYS[2], 1, 'EX', ARGV[3]) end return n",
)
_ADD_TO = Script(
    None,
    b"local n = tonumber(ARGV[1]) local out = {} "
    b"for i = 1, n do out[i] = redis.call('INCRBY', KEYS[i], ARGV[2 + i]) redis.call('EXPIRE', KEYS[i], ARGV[2]) end "
    b"for i = n + 1, #KEYS do out[i] = redis.call('GET', KEYS[i]) end return out",
)
_TAKE = Script(
    None,
    b"local value = redis.call('GET', KEYS[1]) redis.call('DEL', KEYS[1]) local noted = 0 "
    b"if KEYS[2] then noted = redis.call('DEL', KEYS[2]) end return {value, noted}",
)


# Compare-and-delete, compare-and-expire: only the holder of a lease (the value it stored) may
# give it back or renew it; one whose lease ran out must not touch the next holder's.
_DELETE_IF = Script(
    None, b"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_EXPIRE_IF = Script(
    None,
    b"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0",
)


class _Held(threading.local):
    """This thread's own connection of each pool, kept from one script to the next: {pool: (pid, connection)}."""

    def __init__(self) -> None:
        self.connections: dict[Any, tuple[int, Any]] = {}


_held = _Held()


def _connection(pool: Any) -> Any:
    held = _held.connections.get(pool)
    if held is not None and held[0] == os.getpid():  # Not a parent's, after a fork.
        return held[1]
    connection = pool.get_connection()  # Taken for good: it reconnects itself when it must.
    _held.connections[pool] = (os.getpid(), connection)
    return connection


def _evalsha(connection: Any, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    try:
        connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return connection.read_response()
    except NoScriptError:  # Redis forgot the script (it restarted): EVAL loads it again.
        connection.send_command("EVAL", script.script, len(keys), *keys, *args)
        return connection.read_response()


def _command(connection: Any, *args: Any) -> Any:
    connection.send_command(*args)
    return connection.read_response()


@contextmanager
def _using(pool: Any, *, shared: bool) -> Iterator[Any]:
    if not shared:
        yield _connection(pool)
        return
    connection = pool.get_connection()  # Borrowed for this command only.
    try:
        yield connection
    finally:
        pool.release(connection)


def run_script(script: Script, keys: Sequence[str], args: Sequence[Any], client: Any, *, shared: bool = False) -> Any:
    """`script(keys=keys, args=args, client=client)`, without redis-py's machinery around each
    command: the pool's get and release, retries, observability hooks and argument checks are
    about 1,100 of the 1,500 bytecodes of a script call, and every send and delivery makes two
    or more (bench/README.md). The command goes out on a connection of the client's pool that
    this thread keeps (Django's caches, and so their pools, are per thread), or, with `shared`
    (a pool many threads use, as kombu's channels are, at most 10 connections each), on one
    borrowed from the pool for the command and given back.

    The connection itself is redis-py's: anything that interrupts a command (an error, a
    timeout, an exception while waiting) disconnects it, so no reply is left unread for the
    next command, and its next command connects again. As redis-py's default retry does, a
    connection error or a timeout sends the command once more."""
    with _using(client.connection_pool, shared=shared) as connection:
        try:
            return _evalsha(connection, script, keys, args)
        except (RedisConnectionError, RedisTimeoutError):
            return _evalsha(connection, script, keys, args)


def run_command(client: Any, *args: Any, shared: bool = False) -> Any:
    """`client.execute_command(*args)` as `run_script` sends a script, for a command whose
    reply needs no parsing by redis-py (an integer, a bulk string)."""
    with _using(client.connection_pool, shared=shared) as connection:
        try:
            return _command(connection, *args)
        except (RedisConnectionError, RedisTimeoutError):
            return _command(connection, *args)


class _SharedClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClient


def add_to(
    amounts: dict[str, int], *, timeout: int, alias: str = "default", read: tuple[str, ...] = ()
) -> dict[str, int | None]:
    """Add to counters that start at 0 and expire about `timeout` seconds after they are used.

    For counters whose key names their time window (rate limits, pacing): the expiry only
    clears them away. Returns each counter's new value, and the integer stored at each key of
    `read` (set with `cache.add`/`set`), or None where there is none. On Redis this is one
    command for all of them (a script: INCRBY and EXPIRE per counter, GET per read); other
    caches (local memory in development and tests) use `add`, `incr` and `get`.
    """
    cache = caches[alias]  # The backend itself: `django.core.cache.cache` is a proxy.
    if isinstance(cache, RedisCache):
        keys = [cache.make_and_validate_key(key) for key in (*amounts, *read)]
        replies = run_script(
            _ADD_TO, keys, [len(amounts), timeout, *amounts.values()], cache._cache.get_client(write=True)
        )
        counted: dict[str, int | None] = dict(zip(amounts, replies[: len(amounts)], strict=True))
        # Django's Redis serializer stores an int as its digits, which INCR can count on.
        for key, value in zip(read, replies[len(amounts) :], strict=True):
            counted[key] = None if value is None else int(value)
        return counted
    counted = {}
    for key, amount in amounts.items():
        cache.add(key, 0, timeout=timeout)
        try:
            counted[key] = cache.incr(key, amount)
        except ValueError:  # Evicted between add and incr: start the window again.
            cache.set(key, amount, timeout=timeout)
            counted[key] = amount
    for key in read:
        counted[key] = cache.get(key)
    return counted


def tally(
    key: str,
    *,
    amount: int = 1,
    timeout: int,
    note: str | None = None,
    note_timeout: int = 0,
    alias: str = "default",
) -> int:
    """Add `amount` to a counter, created with an expiry of `timeout` seconds if there is none;
    later additions keep that expiry (add_to's renew it). Returns the new value.

    With `note`, an addition to a counter that existed already also sets the key `note` (for
    `note_timeout` seconds): a mark that something was added on top, which outlives the counter
    itself and which `take_tally` takes with it. On Redis one command (a script: SET NX EX,
    INCRBY, and SET EX of the note); elsewhere `add`, `incr` and `set`."""
    cache = caches[alias]
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(write=True)
        keys = [cache.make_and_validate_key(key)]
        if note is not None:
            keys.append(cache.make_and_validate_key(note))
        return int(run_script(_TALLY, keys, [amount, timeout, note_timeout], client))
    cache.add(key, 0, timeout=timeout)
    try:
        value = cache.incr(key, amount)
    except ValueError:  # Expired between add and incr.
        cache.set(key, amount, timeout=timeout)
        value = amount
    if note is not None and value > amount:
        cache.set(note, 1, timeout=note_timeout)
    return value


def take_tally(key: str, *, note: str | None = None, alias: str = "default") -> tuple[int, bool]:
    """Read and delete a `tally` counter and its `note`: (the counter's value, 0 if there is
    none; whether the note was there). On Redis one command, atomic (a script: GET and DEL,
    DEL of the note): an addition lands either in what is taken or in a new counter. Elsewhere
    `get` and `delete`."""
    cache = caches[alias]
    if isinstance(cache, RedisCache):
        keys = [cache.make_and_validate_key(key)]
        if note is not None:
            keys.append(cache.make_and_validate_key(note))
        value, noted = run_script(_TAKE, keys, [], cache._cache.get_client(write=True))
        return (0 if value is None else int(value)), bool(noted)
    value = cache.get(key)
    cache.delete(key)
    noted = note is not None and cache.get(note) is not None
    if noted:
        cache.delete(note)
    return value or 0, noted


def delete_if(key: str, value: Any, *, alias: str = "default") -> bool:
    """Delete `key` if it still holds `value` (stored with `cache.add`/`set`). On Redis one
    atomic command; elsewhere (local memory: one process) `get` and `delete`."""
    cache = caches[alias]
    if isinstance(cache, RedisCache):
        stored = cache._cache._serializer.dumps(value)
        keys = [cache.make_and_validate_key(key)]
        return bool(run_script(_DELETE_IF, keys, [stored], cache._cache.get_client(write=True)))
    return cache.get(key) == value and cache.delete(key)


def touch_if(key: str, value: Any, *, timeout: int, alias: str = "default") -> bool:
    """Give `key` a new expiry of `timeout` seconds if it still holds `value`; as `delete_if`."""
    cache = caches[alias]
    if isinstance(cache, RedisCache):
        stored = cache._cache._serializer.dumps(value)
        keys = [cache.make_and_validate_key(key)]
        return bool(run_script(_EXPIRE_IF, keys, [stored, int(timeout)], cache._cache.get_client(write=True)))
    return cache.get(key) == value and cache.touch(key, timeout)
