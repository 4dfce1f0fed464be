"""Batches: a worker that claims one message of a busy sender sends that sender's other due
messages over the same connection, records them together, and never takes one twice."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from drake.testing.models import fields_of
from drake.testing.threads import at_once
from relay import claims, delivery
from relay.models import DeliveryAttempt, Message, OutboxContent, Status


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


def _queue(send, sender, count):
    return [send(via=sender, to=f"r{i}@example.com").json()["id"] for i in range(count)]


def test_a_batch_goes_out_over_one_login_and_is_recorded_together(send, smtp_server, smtp_sender):
    ids = _queue(send, smtp_sender, 5)
    assert delivery.deliver(ids[2], batch=10) == "sent"
    assert len(smtp_server.messages) == 5
    assert smtp_server.logins == 1
    assert sorted(r.rcpt_tos[0] for r in smtp_server.messages) == [f"r{i}@example.com" for i in range(5)]
    messages = Message.objects.filter(public_id__in=ids)
    assert {m.status for m in messages} == {Status.SENT}
    assert {m.attempts for m in messages} == {1}
    assert all(m.sent_at and m.provider_message_id for m in messages)
    assert {r.queue_id for r in smtp_server.messages} == {m.provider_message_id for m in messages}
    assert all(m.finished_at == m.sent_at and m.lease_until is None and m.last_error is None for m in messages)
    attempts = DeliveryAttempt.objects.filter(message__in=messages)
    assert sorted((a.message_id, a.number, a.outcome, a.smtp_code) for a in attempts) == sorted(
        (m.pk, 1, "sent", 250) for m in messages
    )
    assert all(a.finished_at == a.message.sent_at and a.started_at <= a.finished_at for a in attempts)
    assert not OutboxContent.objects.exists()
    # The other messages' own tasks find nothing left to do.
    assert [delivery.deliver(i, batch=10) for i in ids if i != ids[2]] == [None] * 4


def test_a_claimed_message_reads_as_the_orm_reads_it(send, smtp_sender):
    public_id = send(via=smtp_sender, to="Bob <bob@example.com>", cc=["c@example.com"]).json()["id"]
    found = claims.claimed(public_id)
    orm = Message.objects.select_related("sender", "content").get(public_id=public_id)
    assert fields_of(found) == fields_of(orm)
    assert isinstance(found.to, list) and isinstance(found.subject, dict)  # JSON decoded
    assert fields_of(found.sender) == fields_of(orm.sender)
    assert fields_of(found.content) == fields_of(orm.content)


def test_claiming_one_message_returns_it_as_the_orm_reads_it_once_claimed(send, smtp_sender):
    public_id = send(via=smtp_sender, to="Bob <bob@example.com>", cc=["c@example.com"]).json()["id"]
    now = timezone.now()
    found = claims.claim_one(public_id, now)
    orm = Message.objects.select_related("sender", "content").get(public_id=public_id)
    assert orm.status == Status.SENDING and orm.attempts == 1 and orm.lease_until > now
    assert fields_of(found) == fields_of(orm)
    assert fields_of(found.sender) == fields_of(orm.sender)
    assert fields_of(found.content) == fields_of(orm.content)
    # Held: neither a second claim nor one for a message that does not exist gets anything.
    assert claims.claim_one(public_id, now) is None
    assert claims.claim_one("msg_" + "0" * 24, now) is None
    assert Message.objects.get(public_id=public_id).attempts == 1


def test_a_claim_never_takes_more_than_its_limit(send, smtp_sender):
    ids = _queue(send, smtp_sender, 6)
    claimed = claims.claim_more(smtp_sender, timezone.now(), 2)
    assert [m.public_id for m in claimed] == ids[:2]
    assert Message.objects.filter(status=Status.SENDING).count() == 2
    assert len(claims.claim_more(smtp_sender, timezone.now(), 10)) == 4


def test_a_batch_costs_the_same_statements_whatever_its_size(send, smtp_server, smtp_sender):
    def statements_to_deliver(count):
        ids = _queue(send, smtp_sender, count)
        with CaptureQueriesContext(connection) as queries:
            assert delivery.deliver(ids[0], batch=count) == "sent"
        assert Message.objects.filter(public_id__in=ids, status=Status.SENT).count() == count
        return len(queries)

    statements_to_deliver(1)  # Warm: the sender's 24-hour count is taken once a minute.
    assert statements_to_deliver(3) == statements_to_deliver(12)


def test_a_batch_stops_at_a_refusal_and_gives_the_rest_back(send, smtp_server, smtp_sender, in_process):
    ids = _queue(send, smtp_sender, 4)
    smtp_server.fail_next("data", 554, "5.7.1 Message rejected")
    assert delivery.deliver(ids[0], batch=10) == "failed"
    assert Message.objects.get(public_id=ids[0]).last_error["category"] == "message_rejected"
    rest = Message.objects.filter(public_id__in=ids[1:])
    # Untried: back in the queue, due now, no attempt counted, and prompted again.
    assert {m.status for m in rest} == {Status.QUEUED}
    assert {m.attempts for m in rest} == {0}
    assert all(m.next_attempt_at <= timezone.now() for m in rest)
    assert sorted(in_process) == sorted(ids[1:])
    assert OutboxContent.objects.filter(message__in=rest).count() == 3
    assert [delivery.deliver(i) for i in ids[1:]] == ["sent"] * 3


def test_the_pace_caps_a_batch(send, smtp_server, smtp_sender, in_process):
    from senders.models import Sender

    Sender.objects.filter(pk=smtp_sender.pk).update(max_per_minute=2)
    ids = _queue(send, smtp_sender, 5)
    assert delivery.deliver(ids[0], batch=10) == "sent"
    assert len(smtp_server.messages) == 2
    assert Message.objects.filter(public_id__in=ids, status=Status.QUEUED, attempts=0).count() == 3
    assert len(in_process) == 3


def test_a_batch_over_the_pace_waits_for_it_whole(send, smtp_server, smtp_sender, in_process):
    """A task whose claim found the sender's pace spent gave its batch's other messages back
    due at once, each with a task of its own, which claimed the rest again, found the pace
    spent and gave them back with a task each: a backlog of n over the pace cost about n²/2
    tasks, claims and releases every minute (a Gmail sender's backlog of 2,000, 19 tasks
    per message a minute). Over the pace the whole batch waits for it, as one message does."""
    from senders.models import Sender

    Sender.objects.filter(pk=smtp_sender.pk).update(max_per_minute=2)
    start = timezone.now().replace(second=5, microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(start, tick=False):
        ids = _queue(send, smtp_sender, 6)
        in_process.clear()
        assert delivery.deliver(ids[0], batch=10) == "sent"
        assert sorted(in_process) == sorted(ids[2:])  # Untried: back, a task each.
        given_back = list(in_process)
        assert delivery.deliver(given_back[0], batch=10) == "deferred"
        assert in_process == given_back  # Nothing published again.
        assert [delivery.deliver(i, batch=10) for i in given_back[1:]] == [None] * 3
        assert in_process == given_back
    rest = Message.objects.filter(public_id__in=ids[2:])
    assert {(m.status, m.attempts, m.next_attempt_at) for m in rest} == {
        (Status.QUEUED, 0, start.replace(second=0) + timedelta(minutes=1))
    }
    assert {m.last_error["category"] for m in rest} == {"paced"}
    assert len(smtp_server.messages) == 2


def test_messages_a_batch_gives_back_untried_do_not_spend_the_pace(send, smtp_server, smtp_sender, in_process):
    """A batch counted all its messages against the sender's pace when it began, and the ones
    it gave back untried (it stopped at a refusal, a throttle, a dropped connection, all the
    sender's connections busy) stayed counted: one deferred message of a batch of 20 spent a
    Microsoft 365 sender's minute (30) for messages that never went, which then waited for
    the next minute. What goes back untried is counted again only when it is tried."""
    from senders.models import Sender

    Sender.objects.filter(pk=smtp_sender.pk).update(max_per_minute=3)
    start = timezone.now().replace(second=5, microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(start, tick=False):
        ids = _queue(send, smtp_sender, 3)
        smtp_server.fail_next("data", 451, "4.3.0 Try again later")
        assert delivery.deliver(ids[0], batch=10) == "retry"
        assert [delivery.deliver(i) for i in ids[1:]] == ["sent", "sent"]
    assert len(smtp_server.messages) == 2


def test_a_batch_that_finds_every_connection_busy_waits_for_one_whole(
    send, smtp_server, smtp_sender, in_process, settings
):
    """All the sender's connections busy (another machine's worker holds them): the batch
    waited RELAY_CONNECTION_WAIT_SECONDS, deferred its first message and gave the others back
    due at once, a task each, each of which claimed the rest again, waited as long for a
    connection, and gave them back with a task each: a worker thread held per message and
    task, and the queue, which every sender shares, filling with the busy sender's tasks.
    None of the batch can go before a connection frees: it waits for one whole."""
    from relay import pacing
    from senders.models import Sender

    Sender.objects.filter(pk=smtp_sender.pk).update(max_connections=1)
    settings.RELAY_CONNECTION_WAIT_SECONDS = 0
    ids = _queue(send, smtp_sender, 4)
    in_process.clear()
    held = pacing.acquire_connection_slot(Sender.objects.get(pk=smtp_sender.pk))
    try:
        assert delivery.deliver(ids[0], batch=10) == "deferred"
    finally:
        pacing.release_connection_slot(held)
    assert in_process == []
    waiting = Message.objects.filter(public_id__in=ids)
    assert {(m.status, m.attempts, m.last_error["category"]) for m in waiting} == {(Status.QUEUED, 0, "paced")}
    assert all(m.next_attempt_at > timezone.now() for m in waiting)
    assert smtp_server.messages == []


def test_a_paused_sender_sends_nothing_of_a_batch(send, smtp_server, smtp_sender):
    from senders.models import Sender

    ids = _queue(send, smtp_sender, 3)
    Sender.objects.filter(pk=smtp_sender.pk).update(paused_at=timezone.now(), paused_reason="Checking.")
    assert delivery.deliver(ids[0], batch=10) == "deferred"
    assert smtp_server.messages == []
    assert Message.objects.filter(public_id__in=ids, status=Status.QUEUED).count() == 3


@pytest.mark.django_db(transaction=True)
def test_racing_workers_never_claim_one_message_twice(send, smtp_sender):
    ids = _queue(send, smtp_sender, 60)
    sender = Message.objects.get(public_id=ids[0]).sender

    def worker():
        return [[m.public_id for m in claims.claim_more(sender, timezone.now(), 5)] for _ in range(4)]

    claimed = [batch for batches in at_once(*[worker] * 6) for batch in batches]
    # Whatever the racers skipped while another held it is still there to claim, once.
    claimed.append([m.public_id for m in claims.claim_more(sender, timezone.now(), 100)])
    every = [public_id for batch in claimed for public_id in batch]
    assert len(every) == len(set(every)) == 60
    assert Message.objects.filter(status=Status.SENDING, attempts=1).count() == 60


def test_claimed_messages_read_as_the_orm_reads_them(send, smtp_sender):
    ids = _queue(send, smtp_sender, 3)
    claimed = claims.claim_more(smtp_sender, timezone.now(), 10)
    orm = Message.objects.select_related("content").filter(public_id__in=ids).order_by("created_at", "id")
    assert [fields_of(m) for m in claimed] == [fields_of(m) for m in orm]
    assert [fields_of(m.content) for m in claimed] == [fields_of(m.content) for m in orm]
    assert {m.status for m in claimed} == {Status.SENDING} and {m.attempts for m in claimed} == {1}


def test_a_sender_disconnected_during_a_batch_sends_nothing_more_of_it(
    send, smtp_server, smtp_sender, alice, in_process, monkeypatch
):
    """A batch holds its messages' content and the sender's login from its claim on: a sender
    disconnected (or an account deleted, which takes its messages) while a batch of it was
    going out had the rest of the batch sent all the same, up to RELAY_BATCH_SIZE - 1
    messages over RELAY_TASK_TIME_LIMIT / 2 seconds. A batch looks again at what it holds
    every RECHECK_SECONDS (here before each message) and stops. Found by a privacy review
    helper."""
    from relay import transport
    from senders.actions import delete_sender
    from senders.models import Sender

    monkeypatch.setattr(delivery, "RECHECK_SECONDS", 0)
    ids = _queue(send, smtp_sender, 4)
    real_send = transport.send

    def send_then_disconnect(*args, **kwargs):
        result = real_send(*args, **kwargs)
        if len(smtp_server.messages) == 1:
            delete_sender(Sender.objects.get(pk=smtp_sender.pk), actor=alice, via="console")
        return result

    monkeypatch.setattr(transport, "send", send_then_disconnect)
    assert delivery.deliver(ids[0], batch=10) == "sent"
    assert len(smtp_server.messages) == 1
    rest = Message.objects.filter(public_id__in=ids[1:])
    assert {m.status for m in rest} == {Status.QUEUED} and {m.attempts for m in rest} == {0}
    # Their own tasks fail them, without a connection.
    assert [delivery.deliver(i) for i in ids[1:]] == ["failed"] * 3
    assert {m.last_error["category"] for m in rest.all()} == {"sender_deleted"}
    assert len(smtp_server.messages) == 1 and not OutboxContent.objects.exists()


def test_a_sender_moved_to_another_server_during_a_batch_sends_no_more_to_the_old_one(
    send, smtp_server, smtp_sender, smtp_ca, alice, in_process, monkeypatch
):
    """The pool gives a changed sender new connections (transport._key), but a batch went on
    over the connection it opened before the change: a customer who moved the sender off a
    server (a mistyped host, a provider left) had the rest of the batch go to the old one. The
    batch stops as for a sender disconnected; the rest go to the new server."""
    from drake.testing.smtp import SmtpTestServer
    from relay import transport
    from relay.tests.conftest import SMTP_PASSWORD, SMTP_USER
    from senders.actions import update_sender
    from senders.models import Sender

    monkeypatch.setattr(delivery, "RECHECK_SECONDS", 0)
    new_server = SmtpTestServer(security="starttls", username=SMTP_USER, password=SMTP_PASSWORD, ca=smtp_ca).start()
    try:
        ids = _queue(send, smtp_sender, 4)
        real_send = transport.send

        def send_then_move(*args, **kwargs):
            result = real_send(*args, **kwargs)
            if len(smtp_server.messages) == 1:
                update_sender(Sender.objects.get(pk=smtp_sender.pk), {"port": new_server.port}, actor=alice)
            return result

        monkeypatch.setattr(transport, "send", send_then_move)
        assert delivery.deliver(ids[0], batch=10) == "sent"
        assert len(smtp_server.messages) == 1
        rest = Message.objects.filter(public_id__in=ids[1:])
        assert {m.status for m in rest} == {Status.QUEUED} and {m.attempts for m in rest} == {0}
        assert [delivery.deliver(i) for i in ids[1:]] == ["sent"] * 3
        assert len(smtp_server.messages) == 1 and len(new_server.messages) == 3
    finally:
        new_server.stop()
