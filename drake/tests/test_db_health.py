"""drake.postgresql: a kept connection is health-checked only after it sat idle, and a
connection the server dropped is replaced either way."""

import pytest
from django.db import DatabaseError, connection, connections

from drake.postgresql.base import IDLE_SECONDS
from drake.testing.db import backend_pid, terminate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("drake.postgresql is the PostgreSQL backend")
    assert type(connections["default"]).__module__ == "drake.postgresql.base"


def _request_boundary(idle: float) -> None:
    """The end of one request and, `idle` seconds later, the start of the next."""
    connection.close_if_unusable_or_obsolete()
    connection._boundary_at -= idle
    connection.close_if_unusable_or_obsolete()


def test_a_connection_in_use_is_not_checked():
    backend_pid()
    _request_boundary(idle=0)
    assert connection.health_check_done


def test_a_connection_idle_for_a_while_is_checked():
    backend_pid()
    _request_boundary(idle=IDLE_SECONDS + 1)
    assert not connection.health_check_done


def test_a_connection_dropped_while_idle_is_replaced_before_use():
    pid = backend_pid()
    terminate(pid)
    _request_boundary(idle=IDLE_SECONDS + 1)
    assert backend_pid() != pid  # No error: the check found it dead and opened another.


def test_a_connection_dropped_while_in_use_fails_once_then_is_replaced():
    pid = backend_pid()
    terminate(pid)
    _request_boundary(idle=0)
    with pytest.raises(DatabaseError):
        backend_pid()  # This request fails (the send answers 503, nothing queued) ...
    _request_boundary(idle=0)
    assert backend_pid() != pid  # ... and the error makes the next request reconnect.
