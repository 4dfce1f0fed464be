"""One pending delivery task per sender (relay.outbox.prompt): a busy sender's messages publish
one task, the worker's batches drain the backlog, and no committed message is left behind."""

import pytest
from django.core.cache import cache

from relay import delivery, outbox
from relay.models import Message, Status


@pytest.fixture(autouse=True)
def coalescing(settings, delivering_here):
    """Coalesced prompts on (the in-process cache is shared here); publishes are noted, not sent."""
    settings.RELAY_COALESCE_PROMPTS = True
    cache.clear()
    return delivering_here


@pytest.fixture
def accept(send, smtp_sender, django_capture_on_commit_callbacks):
    """Accept `count` messages through the API, running what runs after each commit."""

    def run(count, sender=smtp_sender):
        ids = []
        for i in range(count):
            with django_capture_on_commit_callbacks(execute=True):
                response = send(via=sender, to=f"r{i}@example.com")
            assert response.status_code == 202
            ids.append(response.json()["id"])
        return ids

    return run


def _run_published(published, batch):
    """Act as the worker: run every published task, including those published meanwhile."""
    runs = 0
    while published:
        delivery.deliver(published.pop(0), batch=batch)
        runs += 1
    return runs


def test_a_busy_sender_publishes_one_task_and_it_takes_the_whole_backlog(accept, coalescing, smtp_server):
    ids = accept(5)
    assert coalescing == [ids[0]]
    assert _run_published(coalescing, batch=20) == 1
    assert len(smtp_server.messages) == 5
    assert smtp_server.logins == 1
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENT}
    # The worker cleared the mark before claiming: the next message publishes its own task.
    later = accept(1)
    assert coalescing == later


def test_a_full_batch_prompts_the_next_until_the_backlog_is_empty(accept, coalescing, smtp_server):
    ids = accept(5)
    assert coalescing == [ids[0]]
    # 2 + 2 + 1: each full batch published the next prompt; the last, short one did not.
    assert _run_published(coalescing, batch=2) == 3
    assert sorted(r.rcpt_tos[0] for r in smtp_server.messages) == [f"r{i}@example.com" for i in range(5)]
    assert Message.objects.filter(status=Status.SENT).count() == 5


def test_a_message_committed_after_the_worker_cleared_the_mark_is_sent_once(
    accept, coalescing, smtp_server, smtp_sender
):
    first = accept(1)
    outbox.prompted(smtp_sender.pk)  # A worker has started on the sender's backlog...
    second = accept(1)  # ...so this one publishes its own task,
    assert coalescing == first + second
    # and each task sends its own message: the second one's prompt counted only itself.
    assert delivery.deliver(first[0], batch=20) == "sent"
    assert delivery.deliver(second[0], batch=20) == "sent"
    assert len(smtp_server.messages) == 2


def test_a_task_whose_mark_counted_only_its_own_message_claims_nothing_more(
    accept, coalescing, smtp_server, monkeypatch
):
    claims_made = []
    claim_more = delivery.claims.claim_more
    monkeypatch.setattr(delivery.claims, "claim_more", lambda *a, **kw: claims_made.append(1) or claim_more(*a, **kw))
    for _ in range(3):
        ids = accept(1)
        assert coalescing == ids
        assert _run_published(coalescing, batch=20) == 1
    assert claims_made == []
    assert len(smtp_server.messages) == 3
    # Two messages on one pending prompt: its task claims the second.
    ids = accept(2)
    assert coalescing == ids[:1]
    assert _run_published(coalescing, batch=20) == 1
    assert claims_made == [1]
    assert Message.objects.filter(status=Status.SENT).count() == 5


def test_messages_counted_on_a_mark_that_expired_go_with_the_senders_next_task(
    accept, coalescing, smtp_server, smtp_sender
):
    first = accept(1)
    coalescing.clear()  # Its task is lost (say, a broker restart)...
    second = accept(1)  # ...and this one counted on its mark, publishing nothing.
    assert coalescing == []
    cache.delete(outbox._prompt_key(smtp_sender.pk))  # The mark expires (PROMPT_SECONDS).
    third = accept(1)  # A new mark, counting only this message, and a task for it:
    assert coalescing == third
    assert _run_published(coalescing, batch=20) == 1
    # the note left by the second message makes that task claim the others too.
    ids = first + second + third
    assert set(Message.objects.filter(public_id__in=ids).values_list("status", flat=True)) == {Status.SENT}


def test_a_message_counted_on_a_mark_whose_publish_failed_goes_with_the_next_task(
    accept, coalescing, smtp_server, smtp_sender, monkeypatch
):
    late = []
    enqueue = outbox.enqueue

    def failing(public_id):
        # Another web process accepts a message while this publish fails: it counts on the mark.
        late.append(outbox.prompt(smtp_sender.pk, "msg_" + "0" * 24))
        return False

    monkeypatch.setattr(outbox, "enqueue", failing)
    first = accept(1)
    assert late == [True] and coalescing == []
    monkeypatch.setattr(outbox, "enqueue", enqueue)
    second = accept(1)  # The failed publish deleted the mark: this one publishes.
    assert coalescing == second
    assert _run_published(coalescing, batch=20) == 1
    assert Message.objects.get(public_id=first[0]).status == Status.SENT


def test_a_task_whose_message_was_taken_still_drains_its_sender(accept, coalescing, smtp_server, smtp_sender):
    ids = accept(3)
    # The prompt's own message went out on its own (say, a sweep's task got there first)...
    assert delivery.deliver(ids[0]) == "sent"
    # ...the prompt still sends the sender's other due messages.
    assert delivery.deliver(ids[0], batch=20) is None
    assert Message.objects.filter(status=Status.SENT).count() == 3


def test_a_failed_publish_lets_the_next_message_publish(accept, coalescing, monkeypatch):
    attempts = []
    monkeypatch.setattr(outbox, "enqueue", lambda public_id: attempts.append(public_id) and False)
    ids = accept(2)
    assert attempts == ids


def test_without_the_cache_every_message_publishes(accept, coalescing, monkeypatch):
    def unreachable(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(outbox, "tally", unreachable)
    ids = accept(3)
    assert coalescing == ids


def test_without_coalescing_every_message_publishes(accept, coalescing, settings):
    settings.RELAY_COALESCE_PROMPTS = False
    ids = accept(3)
    assert coalescing == ids


def test_a_message_accepted_while_the_worker_clears_the_mark_is_in_its_batch(
    accept, coalescing, smtp_server, smtp_sender, monkeypatch
):
    """The claim after clearing the mark takes the time after it: a message committed between
    the worker's first look at the clock and its claim is due for that claim."""
    first = accept(2)  # The second counted on the first one's prompt: its task claims more.
    clear = outbox.prompted
    late = []

    def clear_then_accept(sender_pk):
        waiting = clear(sender_pk)
        late.extend(accept(1))  # Committed after the worker read the clock for its own claim.
        return waiting

    monkeypatch.setattr(outbox, "prompted", clear_then_accept)
    assert delivery.deliver(first[0], batch=20) == "sent"
    assert len(smtp_server.messages) == 3
    assert Message.objects.get(public_id=late[0]).status == Status.SENT


def test_a_paused_senders_task_clears_the_mark(accept, coalescing, smtp_sender):
    from senders.actions import pause_sender

    pause_sender(smtp_sender, "The provider refused the login (535).")
    first = accept(1)
    assert delivery.deliver(first[0], batch=20) == "deferred"
    # Resumed within the mark's lifetime: the next message still publishes its own task.
    from senders.models import Sender

    Sender.objects.filter(pk=smtp_sender.pk).update(paused_at=None, paused_until=None, paused_reason="")
    second = accept(1)
    assert coalescing == first + second


def test_a_single_connection_sender_prompts_the_next_batch_after_sending(
    accept, coalescing, smtp_server, smtp_sender, monkeypatch
):
    from senders.models import Sender

    Sender.objects.filter(pk=smtp_sender.pk).update(max_connections=1)
    ids = accept(4)
    published_while_sending = []
    send = delivery._send_batch

    def sending(*args, **kwargs):
        published_while_sending.append(list(coalescing))
        return send(*args, **kwargs)

    monkeypatch.setattr(delivery, "_send_batch", sending)
    coalescing.clear()
    assert delivery.deliver(ids[0], batch=2) == "sent"
    assert published_while_sending == [[]]  # Nothing published before the batch went out,
    assert coalescing == [ids[1]]  # the next prompt after it.
