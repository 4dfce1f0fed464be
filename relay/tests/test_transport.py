"""The worker's SMTP pool: one login for many messages, and a transparent reconnect."""

import pytest

from relay import transport
from senders import smtp


@pytest.fixture
def pool(monkeypatch):
    fresh = transport.SmtpPool()
    monkeypatch.setattr(transport, "pool", fresh)
    yield fresh
    fresh.close_all()


DATA = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: x\r\n\r\nhello\r\n"


def test_connections_are_reused(pool, smtp_server, smtp_sender):
    for _ in range(5):
        result = transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
        assert result.code == 250
    assert len(smtp_server.messages) == 5
    assert smtp_server.logins == 1
    assert pool.opened == 1


def test_a_connection_dropped_by_the_server_is_replaced(pool, smtp_server, smtp_sender):
    transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    # The server restarts: the pooled connection is dead, which shows on its first command.
    smtp_server.stop()
    smtp_server.start()
    result = transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    assert result.code == 250
    assert pool.opened == 2
    assert len(smtp_server.messages) == 2


def test_idle_connections_are_not_reused(pool, smtp_server, smtp_sender, settings):
    settings.RELAY_POOL_IDLE_SECONDS = 0
    transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    assert pool.opened == 2


def test_a_down_server_is_a_transient_failure(pool, smtp_server, smtp_sender):
    smtp_server.stop()
    with pytest.raises(smtp.SmtpFailure) as failure:
        transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    assert failure.value.category == "connection_failed"
    assert failure.value.transient
