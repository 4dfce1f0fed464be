"""Per-process snapshots of rows the send path reads on every request, never trusted alone.

`POST /v1/send` needs the key with its account, plan and subscription, and the sender. Reading
them is two statements before the accept (a quarter of the request's CPU on the bench machine:
bench/README.md). A snapshot lets the accept skip both reads: the accept's own statement then
asserts in the database, with `drake.sql.unchanged`, that every field it relied on still holds
(key not revoked, account active and not suspended, plan and sender as read). If any changed,
that statement writes nothing and the request is decided again from fresh reads, so a snapshot
can make a request slower but never lets a revoked key, a suspended account or a disabled
sender through.

Instances kept here are shared between requests (and threads): readers must not modify them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

_ALL: list[Snapshots] = []


class Snapshots:
    """A bounded map, least recently used first out, safe to share between threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        _ALL.append(self)

    def get(self, key: Hashable) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


def clear_all() -> None:
    """Forget every snapshot of this process (tests)."""
    for snapshots in _ALL:
        with snapshots._lock:
            snapshots._items.clear()
