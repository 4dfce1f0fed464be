"""Provider-aware pacing: messages over a sender's pace wait instead of failing, across workers."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from drake.testing.threads import at_once
from relay import delivery, outbox, pacing, transport
from relay.models import Message, Status
from senders.models import Sender


@pytest.fixture(autouse=True)
def fresh_pool(monkeypatch):
    pool = transport.SmtpPool()
    monkeypatch.setattr(transport, "pool", pool)
    yield pool
    pool.close_all()


def _deliver_all(ids):
    return [delivery.deliver(i) for i in ids]


def test_a_burst_goes_out_at_the_senders_pace(send, smtp_server, smtp_sender):
    Sender.objects.filter(pk=smtp_sender.pk).update(max_per_minute=3)
    start = timezone.now().replace(second=5, microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(start, tick=False):
        ids = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(6)]
        assert _deliver_all(ids) == ["sent"] * 3 + ["deferred"] * 3
        waiting = Message.objects.filter(public_id__in=ids[3:])
        assert {m.status for m in waiting} == {Status.QUEUED}
        assert {m.attempts for m in waiting} == {0}
        assert {m.next_attempt_at for m in waiting} == {start.replace(second=0) + timedelta(minutes=1)}
        assert waiting.first().last_error["category"] == "paced"
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        assert _deliver_all(ids[3:]) == ["sent"] * 3
    assert len(smtp_server.messages) == 6
    assert not Message.objects.filter(status=Status.FAILED).exists()


def test_the_daily_limit_defers_until_the_oldest_send_leaves_the_window(send, smtp_server, smtp_sender, settings):
    settings.RELAY_MESSAGE_LIFETIME_HOURS = 48  # Long enough to wait for a slot tomorrow.
    Sender.objects.filter(pk=smtp_sender.pk).update(max_per_day=2)
    ids = [send(via=smtp_sender).json()["id"] for _ in range(3)]
    assert _deliver_all(ids) == ["sent", "sent", "deferred"]
    first_sent = Message.objects.get(public_id=ids[0]).sent_at
    assert Message.objects.get(public_id=ids[2]).next_attempt_at == first_sent + timedelta(hours=24)


@pytest.mark.django_db(transaction=True)
def test_connections_are_capped_across_workers(send, smtp_server, smtp_sender, fresh_pool, monkeypatch, settings):
    # This test delivers in-process; a session worker running elsewhere must not take the messages.
    monkeypatch.setattr(outbox, "enqueue", lambda public_id: True)
    settings.RELAY_CONNECTION_WAIT_SECONDS = 0  # Defer at once rather than wait for the slot.
    Sender.objects.filter(pk=smtp_sender.pk).update(max_connections=1)
    smtp_server.reply_delay = 0.3
    ids = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(2)]
    # Another worker process holds the only slot: this one must wait, not open a second connection.
    held = pacing.acquire_connection_slot(Sender.objects.get(pk=smtp_sender.pk))
    assert held is not None
    assert delivery.deliver(ids[0]) == "deferred"
    assert smtp_server.max_connections_seen == 0
    pacing.release_connection_slot(held)
    Message.objects.filter(public_id=ids[0]).update(next_attempt_at=timezone.now())
    results = at_once(*[lambda i=i: delivery.deliver(i) for i in ids])
    assert sorted(results) == ["deferred", "sent"], results
    assert smtp_server.max_connections_seen == 1


def test_more_recipients_than_the_provider_takes_is_refused_at_once(send, alice_sender):
    response = send(to=[f"r{i}@example.com" for i in range(101)])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "to"
    assert "100 recipients" in error["message"]
    assert not Message.objects.exists()


def test_a_sender_whose_deliveries_mostly_fail_is_paused(send, smtp_server, smtp_sender, settings):
    settings.ABUSE_MIN_ATTEMPTS = 5
    smtp_server.fail_next("data", 554, "5.7.1 Rejected as spam", times=5)
    ids = [send(via=smtp_sender).json()["id"] for _ in range(6)]
    assert _deliver_all(ids[:5]) == ["failed"] * 5
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert sender.paused_at is not None
    assert "5 of the last 5 deliveries failed" in sender.paused_reason
    # The next message waits rather than hammering the provider.
    assert delivery.deliver(ids[5]) == "deferred"


def test_the_sender_page_says_why_and_until_when(client, alice, smtp_sender):
    until = timezone.now() + timedelta(minutes=5)
    Sender.objects.filter(pk=smtp_sender.pk).update(
        paused_at=timezone.now(), paused_until=until, paused_reason="The provider asked to slow down (421 4.7.0)."
    )
    client.force_login(alice)
    page = client.get(f"/senders/{smtp_sender.public_id}/").content.decode()
    assert "The provider asked to slow down (421 4.7.0)." in page
    assert until.strftime("%Y-%m-%d %H:%M") in page


@pytest.mark.django_db(transaction=True)
def test_a_worker_waits_for_the_senders_connection_instead_of_deferring(
    send, smtp_server, smtp_sender, fresh_pool, monkeypatch, settings
):
    monkeypatch.setattr(outbox, "enqueue", lambda public_id: True)
    settings.RELAY_CONNECTION_WAIT_SECONDS = 30
    Sender.objects.filter(pk=smtp_sender.pk).update(max_connections=1)
    smtp_server.reply_delay = 0.1
    ids = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(3)]
    results = at_once(*[lambda i=i: delivery.deliver(i) for i in ids])
    # One connection, one login, taken in turn: every message sent, none deferred.
    assert results == ["sent"] * 3
    assert smtp_server.max_connections_seen == 1
    assert smtp_server.logins == 1


def test_the_daily_count_is_taken_from_the_log_again_each_minute(smtp_sender):
    # Reservations that never became sends (failed, deferred) overstate the count only until the
    # next window, when it is counted again from what was really sent.
    Sender.objects.filter(pk=smtp_sender.pk).update(max_per_day=3)
    sender = Sender.objects.get(pk=smtp_sender.pk)
    start = timezone.now().replace(second=1, microsecond=0) + timedelta(minutes=1)
    assert pacing.reserve(sender, start, 3) == 3
    with pytest.raises(pacing.PaceLimited, match="3 messages per 24 hours"):
        pacing.reserve(sender, start + timedelta(seconds=30), 1)
    assert pacing.reserve(sender, start + timedelta(seconds=pacing.DAY_COUNT_SECONDS), 1) == 1


def test_the_daily_limit_counts_what_the_log_already_holds(send, smtp_server, smtp_sender):
    """A new day window starts from the message log's count of the last 24 hours (sent by
    another worker, or before a restart), not from zero."""
    Sender.objects.filter(pk=smtp_sender.pk).update(max_per_day=3)
    earlier = [send(via=smtp_sender).json()["id"] for _ in range(2)]
    Message.objects.filter(public_id__in=earlier).update(
        status=Status.SENT, sent_at=timezone.now() - timedelta(hours=3)
    )
    ids = [send(via=smtp_sender).json()["id"] for _ in range(2)]
    assert _deliver_all(ids) == ["sent", "deferred"]
    oldest = Message.objects.get(public_id=earlier[0]).sent_at
    assert Message.objects.get(public_id=ids[1]).next_attempt_at == oldest + timedelta(hours=24)


def test_a_late_release_or_renewal_does_not_touch_a_slot_another_worker_holds(alice_sender, monkeypatch):
    import time

    Sender.objects.filter(pk=alice_sender.pk).update(max_connections=1)
    alice_sender.refresh_from_db()
    monkeypatch.setattr(pacing, "SLOT_LEASE_SECONDS", 1)
    first = pacing.acquire_connection_slot(alice_sender)  # Worker A.
    assert first is not None and pacing.renew_connection_slot(first)
    time.sleep(1.5)  # A's lease runs out (a stalled process, an idle pooled connection).
    second = pacing.acquire_connection_slot(alice_sender)  # Worker B takes the only slot.
    assert second is not None
    assert not pacing.renew_connection_slot(first)  # A learns its connection must close...
    pacing.release_connection_slot(first)  # ...and closing it leaves B's slot alone.
    assert pacing.acquire_connection_slot(alice_sender) is None
    pacing.release_connection_slot(second)
    assert pacing.acquire_connection_slot(alice_sender) is not None
