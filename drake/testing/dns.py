"""Names whose DNS lookups never answer, for tests of the deadlines around name resolution.

A resolver whose name servers do not answer cannot be made real here without changing
/etc/resolv.conf, so `HangingResolver` stands in for socket.getaddrinfo: a lookup of one of
its names blocks until the test releases it (or `give_up` seconds pass), then fails as glibc
does once its name servers time out (EAI_AGAIN). Every other lookup, and a numeric-only one
(AI_NUMERICHOST, which asks no DNS), goes to the real getaddrinfo.
"""

from __future__ import annotations

import socket
import threading
from typing import Any


class HangingResolver:
    def __init__(self, *names: str, give_up: float = 5.0) -> None:
        self.names = {name.lower() for name in names}
        self.give_up = give_up
        self.real = socket.getaddrinfo
        self.hung: list[str] = []  # Every lookup that hung, in order.
        self._released = threading.Event()
        self._running = 0
        self._changed = threading.Condition()

    def __call__(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        if not (isinstance(host, str) and host.lower() in self.names) or flags & socket.AI_NUMERICHOST:
            return self.real(host, port, family, type, proto, flags)
        with self._changed:
            self.hung.append(host)
            self._running += 1
            self._changed.notify_all()
        try:
            self._released.wait(self.give_up)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    @property
    def running(self) -> int:
        """Lookups blocked in here right now."""
        with self._changed:
            return self._running

    def wait_running(self, count: int, timeout: float = 5) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self._running >= count, timeout=timeout):
                raise AssertionError(f"{self._running} lookup(s) hung, expected {count}")

    def release(self) -> None:
        """Let every hung lookup fail now, and wait until they have (the next test starts clean)."""
        self._released.set()
        with self._changed:
            self._changed.wait_for(lambda: self._running == 0, timeout=5)
