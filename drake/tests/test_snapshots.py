"""drake.snapshots: bounded, and only ever a hint."""

from drake.snapshots import Snapshots


def test_it_keeps_at_most_its_size_dropping_the_least_recently_used():
    snapshots = Snapshots(size=2)
    snapshots.put("a", 1)
    snapshots.put("b", 2)
    assert snapshots.get("a") == 1  # "b" is now the least recently used.
    snapshots.put("c", 3)
    assert len(snapshots) == 2
    assert snapshots.get("b") is None
    assert (snapshots.get("a"), snapshots.get("c")) == (1, 3)


def test_discard_forgets_one():
    snapshots = Snapshots(size=4)
    snapshots.put("a", 1)
    snapshots.discard("a")
    snapshots.discard("never there")
    assert snapshots.get("a") is None
