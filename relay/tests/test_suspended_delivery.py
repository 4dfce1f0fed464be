"""A suspended account's queued messages wait: none goes out while support holds it (its API
keys get 403 already), and they go out if it is unsuspended within their lifetime. Before, a
suspension stopped new sends only: everything already queued, a spam run's backlog say, still
went out."""

import pytest
from django.utils import timezone

from accounts.actions import suspend_account, unsuspend_account
from relay import delivery
from relay.models import Message, OutboxContent, Status

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


def _due_now(*ids):
    Message.objects.filter(public_id__in=ids).update(next_attempt_at=timezone.now())


def test_a_suspended_accounts_messages_wait_and_go_once_it_is_lifted(send, smtp_server, smtp_sender, alice):
    first, second = (send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(2))
    suspend_account(alice, reason="Spam complaints", actor=None)

    assert delivery.deliver(first) == "deferred"
    assert delivery.deliver(second, batch=10) == "deferred"
    held = Message.objects.filter(public_id__in=[first, second])
    assert {m.status for m in held} == {Status.QUEUED}
    assert {m.last_error["category"] for m in held} == {"account_suspended"}
    assert smtp_server.messages == [] and smtp_server.logins == 0
    assert OutboxContent.objects.count() == 2  # Kept: they may still go.

    unsuspend_account(alice, reason="Resolved", actor=None)
    _due_now(first, second)
    assert delivery.deliver(first, batch=10) == "sent"
    assert {m.status for m in held.all()} == {Status.SENT}
    assert len(smtp_server.messages) == 2


def test_a_batch_stops_when_its_account_is_suspended(send, smtp_server, smtp_sender, alice, monkeypatch):
    from relay import transport

    monkeypatch.setattr(delivery, "RECHECK_SECONDS", 0)
    ids = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(4)]
    real_send = transport.send

    def send_then_suspend(*args, **kwargs):
        result = real_send(*args, **kwargs)
        if len(smtp_server.messages) == 1:
            suspend_account(alice, reason="Spam complaints", actor=None)
        return result

    monkeypatch.setattr(transport, "send", send_then_suspend)
    assert delivery.deliver(ids[0], batch=10) == "sent"
    assert len(smtp_server.messages) == 1
    rest = Message.objects.filter(public_id__in=ids[1:])
    assert {m.status for m in rest} == {Status.QUEUED}
    assert [delivery.deliver(i) for i in ids[1:]] == ["deferred"] * 3
    assert {m.last_error["category"] for m in rest.all()} == {"account_suspended"}
    assert len(smtp_server.messages) == 1
