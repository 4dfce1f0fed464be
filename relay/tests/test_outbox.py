"""The claim and the sweep: what makes a 202 survive lost tasks, dead workers and restarts."""

from datetime import timedelta
from io import StringIO

import time_machine
from django.core.management import call_command
from django.utils import timezone

from relay import claims, delivery, outbox, outcomes
from relay.models import Message, OutboxContent, Status


def test_a_message_is_claimed_once(send):
    message_id = send().json()["id"]
    now = timezone.now()
    assert claims.claim(message_id, now) is True
    assert claims.claim(message_id, now) is False
    message = Message.objects.get(public_id=message_id)
    assert message.status == Status.SENDING and message.attempts == 1


def test_an_expired_lease_can_be_claimed_again(send, settings):
    message_id = send().json()["id"]
    now = timezone.now()
    assert claims.claim(message_id, now)
    assert not claims.claim(message_id, now + timedelta(seconds=settings.RELAY_LEASE_SECONDS - 1))
    assert claims.claim(message_id, now + timedelta(seconds=settings.RELAY_LEASE_SECONDS + 1))
    assert Message.objects.get(public_id=message_id).attempts == 2


def test_the_sweep_republishes_only_what_was_lost(send, settings):
    fresh, lost, retry_due, retry_later = (send().json()["id"] for _ in range(4))
    now = timezone.now()
    old = now - timedelta(seconds=settings.RELAY_REQUEUE_AFTER_SECONDS + 5)
    Message.objects.filter(public_id=lost).update(enqueued_at=old)
    Message.objects.filter(public_id=retry_due).update(
        attempts=1, enqueued_at=now - timedelta(seconds=3), next_attempt_at=now - timedelta(seconds=1)
    )
    Message.objects.filter(public_id=retry_later).update(attempts=1, next_attempt_at=now + timedelta(minutes=5))
    assert sorted(outbox.due_messages(now)) == sorted([lost, retry_due])
    # Once republished, it is not republished again until it goes stale once more.
    assert outbox.sweep()["published"] == 2
    assert outbox.due_messages(timezone.now()) == []
    assert fresh


def test_the_sweep_picks_up_a_dead_workers_message(send, settings):
    message_id = send().json()["id"]
    start = timezone.now()
    claims.claim(message_id, start)
    assert outbox.due_messages(start) == []
    later = start + timedelta(seconds=settings.RELAY_LEASE_SECONDS + 1)
    assert outbox.due_messages(later) == [message_id]


def test_messages_past_their_lifetime_fail_and_lose_their_content(send, settings):
    message_id = send().json()["id"]
    with time_machine.travel(timezone.now() + timedelta(hours=settings.RELAY_MESSAGE_LIFETIME_HOURS, minutes=1)):
        out = StringIO()
        call_command("sweep_outbox", stdout=out)
        assert "expired 1" in out.getvalue()
    message = Message.objects.get(public_id=message_id)
    assert message.status == Status.FAILED
    assert message.last_error["category"] == "expired"
    assert not OutboxContent.objects.filter(message=message).exists()


def test_backoff_grows_and_stays_within_bounds(settings):
    settings.RELAY_RETRY_MIN_SECONDS = 5
    settings.RELAY_RETRY_BASE_SECONDS = 30
    settings.RELAY_RETRY_MAX_SECONDS = 3600
    for attempt in range(1, 15):
        delay = outcomes.backoff(attempt).total_seconds()
        assert 5 <= delay <= min(3600, 30 * 2 ** (attempt - 1))


def test_provider_message_ids_are_parsed_from_the_final_reply():
    assert delivery.provider_message_id("2.0.0 Ok: queued as 4ABC123DEF") == "4ABC123DEF"
    assert delivery.provider_message_id("2.0.0 OK  1700000000 a1b2c3xyz.123 - gsmtp") == "a1b2c3xyz.123"
    assert (
        delivery.provider_message_id("2.0.0 OK <AB12@EURPRD.prod.outlook.com> [Hostname=X]")
        == "AB12@EURPRD.prod.outlook.com"
    )
    assert delivery.provider_message_id("250 fine") == ""
