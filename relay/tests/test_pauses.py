"""Senders that stop sending. A sender whose earlier timed pause (a provider throttle) has
lapsed is paused again by a refused login: its messages wait, and no further login is tried.
A sender support disabled sends nothing more: its queued messages fail at their next attempt."""

from datetime import timedelta

import pytest
from django.utils import timezone

from relay import delivery
from relay.models import Message, OutboxContent, Status
from senders import actions as sender_actions
from senders.models import Sender

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


def test_a_refused_login_pauses_a_sender_whose_earlier_throttle_pause_lapsed(send, smtp_server, smtp_sender):
    # The app password stops working (revoked at the provider, say)...
    sender_actions.update_sender(smtp_sender, {"password": "revoked app password"}, actor=None)
    # ...and an earlier "slow down" had paused the sender for a while; that pause is over.
    sender_actions.pause_sender(smtp_sender, "The provider asked to slow down.", until=timezone.now())
    Sender.objects.filter(pk=smtp_sender.pk).update(paused_until=timezone.now() - timedelta(minutes=5))
    assert not Sender.objects.get(pk=smtp_sender.pk).is_paused()

    first, second = (send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(2))
    assert delivery.deliver(first) == "deferred"
    logins = smtp_server.logins
    assert Sender.objects.get(pk=smtp_sender.pk).is_paused(), "a refused login must pause the sender"
    # The other message waits without another login that could lock the mailbox.
    assert delivery.deliver(second) == "deferred"
    assert smtp_server.logins == logins
    assert Message.objects.get(public_id=second).status == Status.QUEUED


def test_the_daily_quota_pauses_a_sender_that_was_throttled_before(send, smtp_server, smtp_sender, settings):
    settings.RELAY_MESSAGE_LIFETIME_HOURS = 48
    settings.PROVIDER_THROTTLE_PAUSE_SECONDS = 0.2
    first, second = (send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(2))
    # A "slow down": the sender is paused a moment, and the pause lapses.
    smtp_server.fail_next("data", 421, "4.7.0 Try again later, closing connection")
    assert delivery.deliver(first) == "deferred"
    Message.objects.filter(public_id=first).update(next_attempt_at=timezone.now())
    import time

    time.sleep(0.3)
    assert not Sender.objects.get(pk=smtp_sender.pk).is_paused()
    # Then Gmail's daily quota: the sender waits for tomorrow, with all its messages.
    smtp_server.fail_next("data", 550, "5.4.5 Daily user sending limit exceeded")
    assert delivery.deliver(first) == "deferred"
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert sender.is_paused() and sender.paused_until.hour == 0
    assert "quota" in sender.paused_reason
    assert delivery.deliver(second) == "deferred"
    assert smtp_server.messages == []
    assert Message.objects.get(public_id=second).next_attempt_at == sender.paused_until


@pytest.mark.parametrize(
    ("code", "text", "status", "category"),
    [
        (550, "5.4.5 Daily user sending limit exceeded", Status.QUEUED, "provider_quota"),
        (554, "5.7.1 Message refused", Status.FAILED, "message_rejected"),
        (451, "4.3.0 Try later", Status.QUEUED, "deferred_by_provider"),
    ],
)
def test_a_refused_data_command_is_read_as_a_refusal_after_the_body(
    send, smtp_server, smtp_sender, settings, code, text, status, category
):
    """Gmail's daily quota in answer to DATA, before any 354, failed the message as "rejected"
    (a review's carried-over gap): it waits for tomorrow, as when it comes after the body."""
    settings.RELAY_MESSAGE_LIFETIME_HOURS = 48
    message_id = send(via=smtp_sender).json()["id"]
    smtp_server.fail_next("data_command", code, text)
    delivery.deliver(message_id)
    message = Message.objects.get(public_id=message_id)
    assert (message.status, message.last_error["category"], message.last_error["smtp_code"]) == (status, category, code)
    assert Sender.objects.get(pk=smtp_sender.pk).is_paused() is (category == "provider_quota")
    assert smtp_server.messages == []


def test_a_password_that_no_longer_decrypts_pauses_the_sender_and_keeps_the_message(send, smtp_server, smtp_sender):
    from cryptography.fernet import Fernet
    from django.db import connection

    # Stored under a key that has since left FIELD_ENCRYPTION_KEYS (a rotation gone wrong).
    foreign = Fernet(Fernet.generate_key()).encrypt(b"app password").decode()
    with connection.cursor() as cursor:
        table, column = Sender._meta.db_table, Sender._meta.get_field("password_encrypted").column
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [foreign, smtp_sender.pk])  # noqa: S608
    message_id = send(via=smtp_sender).json()["id"]
    assert delivery.deliver(message_id) == "deferred"
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert sender.is_paused() and sender.paused_reason == sender_actions.UNREADABLE_PASSWORD
    message = Message.objects.get(public_id=message_id)
    assert message.status == Status.QUEUED and message.last_error["category"] == "secret_unreadable"
    assert smtp_server.logins == 0


def test_a_disabled_senders_queued_messages_fail_without_a_connection(
    send, smtp_server, smtp_sender, alice_api, django_user_model
):
    """They used to wait, deferred as `sender_paused`, for their whole lifetime, and went out
    if support enabled the sender meanwhile: the messages a sender was stopped for."""
    first, second = (send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(2))
    sam = django_user_model.objects.create_user("sam@3drake.test", "a sturdy staff passphrase", is_staff=True)
    sender_actions.disable_sender(smtp_sender, "Phishing reported by recipients", actor=sam)
    assert delivery.deliver(first, batch=20) == "failed"
    assert delivery.deliver(second) == "failed"
    for public_id in (first, second):
        message = Message.objects.get(public_id=public_id)
        assert message.status == Status.FAILED
        assert message.last_error == {
            "category": "sender_disabled",
            "smtp_code": None,
            "message": "This sender is disabled by support: Phishing reported by recipients. Please contact support.",
        }
        assert not OutboxContent.objects.filter(message=message).exists()
        assert message.attempt_log.get().category == "sender_disabled"
    assert alice_api.get(f"/v1/messages/{first}").json()["last_error"]["category"] == "sender_disabled"
    assert (smtp_server.max_connections_seen, smtp_server.logins) == (0, 0)

    # Enabled again, the sender sends what is sent from now on, and nothing from before.
    sender_actions.enable_sender(smtp_sender, "resolved with the customer", actor=sam)
    assert delivery.deliver(first) is None
    third = send(via=smtp_sender).json()["id"]
    assert delivery.deliver(third) == "sent"
    assert [m.rcpt_tos for m in smtp_server.messages] == [["bob@example.com"]]


def test_a_message_waiting_on_a_pause_fails_when_the_sender_is_disabled(
    send, smtp_server, smtp_sender, django_user_model
):
    message_id = send(via=smtp_sender).json()["id"]
    sender_actions.pause_sender(smtp_sender, "The provider refused the login (535).")
    assert delivery.deliver(message_id) == "deferred"
    sam = django_user_model.objects.create_user("sam@3drake.test", "a sturdy staff passphrase", is_staff=True)
    sender_actions.disable_sender(smtp_sender, "Phishing reported by recipients", actor=sam)
    Message.objects.filter(public_id=message_id).update(next_attempt_at=timezone.now())
    assert delivery.deliver(message_id) == "failed"
    assert Message.objects.get(public_id=message_id).last_error["category"] == "sender_disabled"
    assert smtp_server.logins == 0


def test_messages_failed_by_a_disable_do_not_pause_the_sender_enabled_again(
    send, smtp_server, smtp_sender, django_user_model, settings
):
    """They never reached the provider: the check for senders whose deliveries mostly fail
    must not count them, or the first refusal after the enable pauses the sender."""
    settings.ABUSE_MIN_ATTEMPTS = 3
    queued = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(4)]
    sam = django_user_model.objects.create_user("sam@3drake.test", "a sturdy staff passphrase", is_staff=True)
    sender_actions.disable_sender(smtp_sender, "Phishing reported by recipients", actor=sam)
    assert [delivery.deliver(public_id) for public_id in queued] == ["failed"] * 4
    sender_actions.enable_sender(smtp_sender, "resolved with the customer", actor=sam)
    smtp_server.fail_next("data", 554, "5.7.1 Message refused")
    assert delivery.deliver(send(via=smtp_sender).json()["id"]) == "failed"
    assert not Sender.objects.get(pk=smtp_sender.pk).is_paused()


def test_a_batch_stops_when_its_sender_is_paused(send, smtp_server, smtp_sender, monkeypatch):
    """A batch looked again at what it holds (relay.claims.still_held) for a deleted or
    suspended account and a sender disconnected or disabled, not for a pause: a sender paused
    while a batch of it went out (another worker's batch told to slow down, the daily quota
    used up, staff pausing it) had the rest of the batch sent regardless, up to
    RELAY_BATCH_SIZE - 1 messages to a provider that had just asked for none."""
    from relay import transport

    monkeypatch.setattr(delivery, "RECHECK_SECONDS", 0)
    ids = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(4)]
    real_send = transport.send

    def send_then_pause(*args, **kwargs):
        result = real_send(*args, **kwargs)
        if len(smtp_server.messages) == 1:
            until = timezone.now() + timedelta(minutes=5)
            sender_actions.pause_sender(smtp_sender, "The provider asked to slow down (421 4.7.0).", until=until)
        return result

    monkeypatch.setattr(transport, "send", send_then_pause)
    assert delivery.deliver(ids[0], batch=10) == "sent"
    assert len(smtp_server.messages) == 1
    rest = Message.objects.filter(public_id__in=ids[1:])
    assert {(m.status, m.attempts) for m in rest} == {(Status.QUEUED, 0)}
    assert [delivery.deliver(i) for i in ids[1:]] == ["deferred"] * 3
    assert {m.last_error["category"] for m in rest.all()} == {"sender_paused"}
    assert len(smtp_server.messages) == 1
