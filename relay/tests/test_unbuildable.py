"""A message in the outbox that the worker cannot turn into MIME, or whose sending raises: it
ends `failed` (its content gone) instead of being claimed again and again for ever, and the
rest of its batch is not held up. Validation refuses what is known to be unwritable; these are
messages accepted before a rule came in, or cases no rule knows yet (a review found two that
validation let through: a lone surrogate in the body, a group in a Resent-To header)."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from relay import actions, delivery, outbox, outcomes, transport
from relay.models import DeliveryAttempt, Message, OutboxContent, Status
from relay.tests.conftest import smtp_sender_fields
from relay.validation import SendRequest
from senders.models import Sender

UNWRITABLE = {
    "lone-surrogate-body": {"text": "H\ud800i"},
    "group-in-resent-to": {"headers": {"Resent-To": ":;" * 50}},
    # Decoded by the email package into a second header line: to_wire refuses the head.
    "encoded-word-in-local-part": {"to": ["=?utf-8?q?a=0D=0AX-Evil=3A1?=@example.com"]},
}


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


def _accept_unchecked(user, sender, **content) -> str:
    """Into the outbox as accept writes it, past validation."""
    fields = {"to": ["bob@example.com"], "subject": "Hello", "text": "Hi", **content}
    request = SendRequest(sender=sender.public_id, **fields)
    message, _ = actions.accept_message(user, request, size=100)
    return message.public_id


@pytest.mark.parametrize("content", UNWRITABLE.values(), ids=UNWRITABLE.keys())
def test_a_message_that_cannot_be_built_fails_at_once_and_keeps_nothing(
    alice, smtp_sender, smtp_server, content, caplog
):
    public_id = _accept_unchecked(alice, smtp_sender, **content)
    with caplog.at_level(logging.INFO):
        assert delivery.deliver(public_id) == "failed"
    message = Message.objects.get(public_id=public_id)
    assert message.status == Status.FAILED and message.attempts == 1 and message.finished_at
    assert message.last_error["category"] == "content_invalid"
    assert not OutboxContent.objects.filter(message=message).exists()
    assert DeliveryAttempt.objects.get(message=message).outcome == "failed"
    assert smtp_server.messages == []
    # Logged by the exception's kind only: its text could quote the content.
    ours = [r for r in caplog.records if r.name.startswith("relay")]
    assert any(public_id in r.getMessage() for r in ours)
    assert not any(marker in r.getMessage() for r in ours for marker in (":;", "\ud800", "X-Evil")) and not any(
        r.exc_info for r in ours
    )
    assert delivery.deliver(public_id) is None  # Terminal: nothing to claim.


def test_a_sending_that_raises_gives_the_rest_of_the_batch_back(alice, smtp_sender, smtp_server, send, monkeypatch):
    ids = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(3)]
    real_send = transport.send

    def send_or_raise(sender, from_email, recipients, data, **kwargs):
        if recipients == ["r1@example.com"]:
            raise RuntimeError("a bug")
        return real_send(sender, from_email, recipients, data, **kwargs)

    monkeypatch.setattr(transport, "send", send_or_raise)
    with pytest.raises(RuntimeError):
        delivery.deliver(ids[0], batch=10)
    statuses = dict(Message.objects.filter(public_id__in=ids).values_list("public_id", "status"))
    # r0 went out and is recorded; r1 keeps its claim until its lease runs out (then it is
    # taken again, its attempt counted); r2, never tried, is back in the queue at once.
    assert statuses == {ids[0]: Status.SENT, ids[1]: Status.SENDING, ids[2]: Status.QUEUED}
    assert Message.objects.get(public_id=ids[2]).attempts == 0
    monkeypatch.setattr(transport, "send", real_send)
    assert delivery.deliver(ids[2]) == "sent"


def test_a_message_claimed_past_its_lifetime_by_a_worker_that_is_gone_expires(alice, smtp_sender, send):
    stuck, running, waiting = (send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(3))
    now = timezone.now()
    past = now - timedelta(seconds=1)
    Message.objects.filter(public_id=stuck).update(status=Status.SENDING, lease_until=past, expires_at=past)
    # A worker still holds this one (its lease runs): it is that worker's to finish.
    Message.objects.filter(public_id=running).update(
        status=Status.SENDING, lease_until=now + timedelta(minutes=3), expires_at=past
    )
    assert outcomes.expire_overdue(timezone.now()) == 1
    message = Message.objects.get(public_id=stuck)
    assert message.status == Status.FAILED and message.last_error["category"] == "expired"
    assert message.lease_until is None and message.finished_at
    assert not OutboxContent.objects.filter(message=message).exists()
    assert Message.objects.get(public_id=running).status == Status.SENDING
    assert Message.objects.get(public_id=waiting).status == Status.QUEUED
    outbox.sweep()  # The sweep runs it; nothing else changes.
    assert Message.objects.get(public_id=running).status == Status.SENDING


def test_a_late_failure_does_not_undo_a_takeovers_success(alice, smtp_sender, send):
    """A worker whose lease ran out fails its message after another worker took it over and sent
    it: the message stays sent, and no failed attempt is added to it."""
    public_id = send(via=smtp_sender).json()["id"]
    slow = delivery.claims.claim_one(public_id, timezone.now())
    Message.objects.filter(public_id=public_id).update(status=Status.SENT, lease_until=None)
    outcomes.finish(slow, timezone.now(), error=("recipient_rejected", 550, "no such user"))
    message = Message.objects.get(public_id=public_id)
    assert message.status == Status.SENT and message.last_error is None
    assert not DeliveryAttempt.objects.filter(message=message).exists()


def test_a_sender_whose_address_has_an_internationalized_domain_sends(alice_api, smtp_server, relay_settings, send):
    """Accepted as `alice@bücher.de` (201, and it verifies), such a sender had every message
    fail content_invalid: From and MAIL FROM cannot carry the domain unencoded (no SMTPUTF8)."""
    fields = smtp_sender_fields(smtp_server, from_email="alice@bücher.de")
    created = alice_api.post("/v1/senders", fields, format="json")
    assert created.status_code == 201
    assert created.json()["from_email"] == "alice@xn--bcher-kva.de"
    sender = Sender.objects.get(public_id=created.json()["id"])
    public_id = send(via=sender).json()["id"]
    assert delivery.deliver(public_id) == "sent"
    (received,) = smtp_server.messages
    assert received.mail_from == "alice@xn--bcher-kva.de"
    assert b"From: Alice <alice@xn--bcher-kva.de>" in received.data


def test_a_sender_connected_with_an_internationalized_domain_before_it_was_kept_in_idna_sends(
    smtp_sender, smtp_server, send
):
    """Senders connected before the address was stored in IDNA kept `alice@bücher.de`, and every
    message of theirs still failed content_invalid: a migration stores theirs in IDNA too."""
    import importlib

    from django.apps import apps

    Sender.objects.filter(pk=smtp_sender.pk).update(from_email="alice@bücher.de")
    importlib.import_module("senders.migrations.0006_from_email_idna").ascii_domains(apps, None)
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert sender.from_email == "alice@xn--bcher-kva.de"
    assert delivery.deliver(send(via=sender).json()["id"]) == "sent"
    assert smtp_server.messages[0].mail_from == "alice@xn--bcher-kva.de"
