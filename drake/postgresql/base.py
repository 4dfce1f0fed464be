"""Django's PostgreSQL backend, health-checking a kept connection only after it sat idle.

With CONN_HEALTH_CHECKS Django runs `SELECT 1` before the first statement of every request and
every Celery task on a kept connection. On the send path that was one of the two round trips a
request made to PostgreSQL (the accept is the other: bench/README.md). What the check guards
against is a connection that died while unused: the server restarted, or a firewall or an idle
timeout cut it. Here the check runs only when the connection has not been used for
IDLE_SECONDS or an error occurred on it (Django's own rule, kept). A connection in use under
load is not checked; if the server went away in that second, the statement fails (the send
answers 503, nothing queued), the error closes the connection, and the next request opens a
new one.
"""

from __future__ import annotations

import time

from django.db.backends.postgresql import base

try:
    from psycopg import _queries
except ImportError:  # pragma: no cover (a psycopg without it: test_send.py says so)
    _queries = None

IDLE_SECONDS = 1.0

# psycopg keeps the `%s` -> `$n` conversion of a statement in an LRU cache (128 entries) only up
# to 4,096 bytes and 50 parameters, to keep ORM-made statements of varying shape out of it. The
# send path's one-statement accept has 57 (message, content, usage record, quota charge and the
# snapshot checks: relay.actions): over the limit, psycopg re-tokenized it with a regex on every
# send, a tenth of the request's CPU. Its shape is fixed, so the limits are raised for it; a
# test (relay/tests/test_send.py) fails if the accept is converted without the cache again.
if hasattr(_queries, "MAX_CACHED_STATEMENT_PARAMS"):
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 8192)
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, 100)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._boundary_at = 0.0

    def close_if_unusable_or_obsolete(self) -> None:
        # Called at the start and the end of every request and task (close_old_connections):
        # at a start, the time since the last call is how long the connection sat unused.
        super().close_if_unusable_or_obsolete()
        now = time.monotonic()
        if self.connection is not None and not self.errors_occurred and now - self._boundary_at < IDLE_SECONDS:
            self.health_check_done = True
        self._boundary_at = now
