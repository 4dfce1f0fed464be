"""drake.cache's counters, on the cache the run is configured with (Redis in CI)."""

import pytest
from django.core.cache import cache

from drake.cache import RedisCache, add_to, take_tally, tally


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
