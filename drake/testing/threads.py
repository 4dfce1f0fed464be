"""Running code at the same moment in several threads, for tests of races."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def at_once(*targets: Callable[[], Any]) -> list[Any]:
    """Start every target in its own thread at the same moment; their results, in order.

    Each thread closes its own database connection when done (a transactional test's database
    can then be dropped), and the first exception a thread raised is raised here.
    """
    start = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def run(index: int, target: Callable[[], Any]) -> None:
        try:
            start.wait()
            results[index] = target()
        except BaseException as exc:  # Re-raised below, in the test's thread.
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, target)) for i, target in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
