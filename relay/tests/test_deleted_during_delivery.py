"""An account deleted while its messages are going out: its messages go with it, and what the
worker records afterwards (a sent batch, a retry, a deferral) finds nothing to write to. Before,
each of those wrote an attempt row for a message no longer there: a foreign-key violation, a
traceback in the worker's log, and on PostgreSQL the whole batch's record refused with it.

Committed transactions here (not a test's one transaction): the foreign key is checked when a
statement commits, as in production."""

import pytest

from accounts.models import User
from accounts.privacy import delete_account
from relay import delivery, transport
from relay.models import DeliveryAttempt, Message, OutboxContent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


def _nothing_left():
    assert not Message.objects.exists()
    assert not DeliveryAttempt.objects.exists()
    assert not OutboxContent.objects.exists()


def _delete_when(monkeypatch, alice, *, after_messages: int):
    """The account is deleted once the server holds `after_messages` messages, from inside the
    worker's send (what another process's deletion looks like to it)."""
    real_send = transport.send
    calls = []

    def send_then_delete(*args, **kwargs):
        calls.append(1)
        try:
            return real_send(*args, **kwargs)
        finally:
            if len(calls) == after_messages:
                delete_account(User.objects.get(pk=alice.pk), actor=None, via="shell")

    monkeypatch.setattr(transport, "send", send_then_delete)


def test_a_batch_whose_account_is_deleted_midway_records_what_remains(
    send, smtp_server, smtp_sender, alice, monkeypatch
):
    monkeypatch.setattr(delivery, "RECHECK_SECONDS", 0)
    ids = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(3)]
    _delete_when(monkeypatch, alice, after_messages=1)

    assert delivery.deliver(ids[0], batch=10) == "sent"  # Before: IntegrityError from record_sent.
    assert len(smtp_server.messages) == 1  # The batch saw the deletion and stopped.
    _nothing_left()


def test_a_retry_after_the_account_is_deleted_writes_nothing(send, smtp_server, smtp_sender, alice, monkeypatch):
    public_id = send(via=smtp_sender).json()["id"]
    smtp_server.fail_next("data", 451, "4.3.0 Try again later")
    _delete_when(monkeypatch, alice, after_messages=1)

    assert delivery.deliver(public_id) == "retry"
    _nothing_left()


def test_a_deferral_after_the_account_is_deleted_writes_nothing(send, smtp_server, smtp_sender, alice, monkeypatch):
    public_id = send(via=smtp_sender).json()["id"]
    smtp_server.fail_next("data", 421, "4.7.0 Try again later, closing connection")
    _delete_when(monkeypatch, alice, after_messages=1)

    assert delivery.deliver(public_id) == "deferred"  # A throttle: the sender waits.
    _nothing_left()
