"""drake.cache's counters, on the cache the run is configured with (Redis in CI)."""

import os
import time

import pytest
import redis
from django.core.cache import cache

from drake.cache import RedisCache, _connection, add_to, take_tally, tally


@pytest.fixture(autouse=True)
def _clean():
    cache.delete("test:tally")
    yield
    cache.delete("test:tally")


def test_a_tally_counts_from_its_first_addition_and_is_taken_once():
    assert take_tally("test:tally") == (0, False)
    assert tally("test:tally", timeout=30) == 1
    assert tally("test:tally", timeout=30) == 2
    assert tally("test:tally", amount=2, timeout=30) == 4
    assert take_tally("test:tally") == (4, False)
    assert take_tally("test:tally") == (0, False)
    assert tally("test:tally", timeout=30) == 1  # A new counter after the take.


def test_an_addition_on_top_leaves_a_note_that_outlives_the_counter():
    cache.delete("test:note")
    assert tally("test:tally", timeout=30, note="test:note", note_timeout=60) == 1
    assert cache.get("test:note") is None  # The first addition made the counter: no note.
    assert tally("test:tally", timeout=30, note="test:note", note_timeout=60) == 2
    cache.delete("test:tally")  # The counter expired (or was deleted)...
    assert tally("test:tally", timeout=30, note="test:note", note_timeout=60) == 1
    assert take_tally("test:tally", note="test:note") == (1, True)  # ...the note is still there.
    assert take_tally("test:tally", note="test:note") == (0, False)


def test_later_additions_keep_the_expiry_the_counter_was_created_with():
    from django.core.cache import caches

    backend = caches["default"]
    tally("test:tally", timeout=30)
    tally("test:tally", timeout=3000)
    if isinstance(backend, RedisCache):
        left = backend._cache.get_client().ttl(backend.make_and_validate_key("test:tally"))
    else:
        import time

        left = backend._expire_info[backend.make_and_validate_key("test:tally")] - time.time()
    assert 0 < left <= 30


def test_a_redis_that_forgot_the_scripts_loads_them_again():
    from django.core.cache import caches

    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        pytest.skip("needs CACHE_URL to be Redis (in CI it is: conftest fails the run otherwise)")
    backend._cache.get_client(write=True).script_flush()  # As a restarted Redis has.
    assert tally("test:tally", timeout=30) == 1
    backend._cache.get_client(write=True).script_flush()
    assert take_tally("test:tally") == (1, False)


def test_add_to_counts_several_counters_and_reads_stored_integers_in_one_go():
    cache.delete_many(["test:a", "test:b", "test:stored", "test:missing"])
    cache.add("test:stored", 41, timeout=30)
    try:
        assert add_to({"test:a": 1, "test:b": 5}, timeout=30) == {"test:a": 1, "test:b": 5}
        counted = add_to({"test:a": 2, "test:b": -1}, timeout=30, read=("test:missing", "test:stored"))
        assert counted == {"test:a": 3, "test:b": 4, "test:missing": None, "test:stored": 41}
        assert add_to({}, timeout=30, read=("test:stored",)) == {"test:stored": 41}
    finally:
        cache.delete_many(["test:a", "test:b", "test:stored"])


def _redis_backend():
    from django.core.cache import caches

    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        pytest.skip("needs CACHE_URL to be Redis (in CI it is: conftest fails the run otherwise)")
    return backend


def test_a_connection_the_server_closed_is_replaced_and_the_command_sent_again():
    backend = _redis_backend()
    client = backend._cache.get_client(write=True)
    assert tally("test:tally", timeout=30) == 1
    held = _connection(client.connection_pool)  # The connection this thread keeps for the scripts.
    held.send_command("CLIENT", "ID")
    killed = held.read_response()
    client.client_kill_filter(_id=killed)
    assert tally("test:tally", timeout=30) == 2
    held = _connection(client.connection_pool)
    held.send_command("CLIENT", "ID")
    assert held.read_response() != killed


def test_a_reply_left_unread_by_a_timeout_is_not_taken_by_the_next_command(settings):
    _redis_backend()
    settings.CACHES = {**settings.CACHES, "short": {**settings.CACHES["default"], "OPTIONS": {"socket_timeout": 0.1}}}
    from django.core.cache import caches

    short = caches["short"]
    client = short._cache.get_client(write=True)
    key = short.make_and_validate_key("test:paused")
    client.delete(key)
    assert add_to({"test:paused": 1}, timeout=30, alias="short") == {"test:paused": 1}
    client.execute_command("CLIENT", "PAUSE", 400, "WRITE")  # Holds scripts that write, not this client.
    with pytest.raises(redis.exceptions.TimeoutError):
        add_to({"test:paused": 1}, timeout=30, alias="short")  # Twice: the retry times out too.
    time.sleep(0.5)
    # The connections the held commands went out on were dropped (and Redis drops what a gone
    # client sent): the next reply is this command's own.
    counted = add_to({"test:paused": 1}, timeout=30, alias="short")["test:paused"]
    assert counted == int(client.get(key)) == 2
    client.delete(key)


def _count_alone(who: str, times: int) -> bool:
    """Whether each of `times` additions to this process's own counter answered its own count."""
    key = f"test:{who}"
    cache.delete(key)
    return all(add_to({key: 1}, timeout=30)[key] == n for n in range(1, times + 1))


def test_a_forked_child_does_not_talk_on_its_parents_connection():
    _redis_backend()
    assert tally("test:tally", timeout=30) == 1  # This thread holds its connection now.
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            os.write(write, b"1" if _count_alone("child", 500) else b"0")
        finally:
            os._exit(0)
    # Both at once: on one shared socket, each would read replies to the other's commands.
    assert _count_alone("parent", 500)
    os.waitpid(child, 0)
    assert os.read(read, 1) == b"1"
