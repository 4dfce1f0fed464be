"""Publishing delivery tasks, and the sweep that re-publishes what a lost task left behind.

A `202` means the message row and its encrypted content are committed. Tasks are only a
prompt: a task lost in a broker restart, a publish that failed, or a worker killed mid-send all
leave a message that is due (`queued` with `next_attempt_at` passed, or `sending` with an
expired lease). The sweep finds those and publishes them again; the claim in relay.delivery
makes any duplicate harmless.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, Q
from django.utils import timezone

from drake import broker
from drake.cache import take_tally, tally
from relay.models import Message, Status

logger = logging.getLogger(__name__)
SWEEP_BATCH = 1000
# How long a pending prompt stands for its sender's new messages. Only bounds a lost one:
# after it, the next accepted message publishes again (the sweep covers a sender gone quiet).
PROMPT_SECONDS = 30


# How long the note that messages counted on a pending prompt outlives the mark itself (the
# mark expired, or a failed publish deleted it): the sender's next task claims them. Past the
# sweep's reach (RELAY_REQUEUE_AFTER_SECONDS and its interval) the sweep has them anyway.
OWED_SECONDS = 5 * PROMPT_SECONDS


def _prompt_key(sender_pk: int) -> str:
    return f"drake:prompt:{sender_pk}"


def _owed_key(sender_pk: int) -> str:
    return f"drake:prompt-owed:{sender_pk}"


# What a worker's follow-up prompt counts for (`prompt(backlog=True)`): more than one message,
# so the task it publishes claims the sender's backlog (see `prompted`).
BACKLOG = 2


def prompt(sender_pk: int, public_id: str, *, backlog: bool = False) -> bool:
    """Publish delivery of a just-committed message, unless its sender has a prompt pending.

    A delivery task drains its sender's due messages in batches (relay.delivery), so under load
    one pending task per sender is enough: later messages of that sender publish nothing. It
    holds because of the order of two steps. Here: commit, then count this message on the
    sender's prompt mark (a counter in the shared cache, created with an expiry) and publish
    only if this call created it. In the worker: take the mark (read and delete it at once:
    `prompted`), then claim the sender's due messages. So a message that found the mark set was
    committed before the take, and the claim after it sees the message. The count says whether
    any did: a mark of 1 is the publisher's message alone, and the task that takes it need
    claim nothing more. A message that counts on a mark already there also leaves a note that
    outlives the mark (OWED_SECONDS), so if the mark vanishes before a task takes it (it
    expired, a failed publish deleted it), the sender's next task still claims those messages.
    A worker whose batch came back full publishes the next prompt itself (`backlog=True`,
    which counts as more than one message). Left to the sweep (RELAY_REQUEUE_AFTER_SECONDS)
    now, where the sender's next task took them before the count: a message whose own task
    was lost with nothing counted on its mark, and messages counted on a mark whose taker died
    before its claim (the take removes the note too).

    Needs a cache shared by web and workers (RELAY_COALESCE_PROMPTS); otherwise, or if the
    cache cannot be reached, every message publishes its own task, as `enqueue` does.
    """
    if not settings.RELAY_COALESCE_PROMPTS:
        return enqueue(public_id)
    key = _prompt_key(sender_pk)
    amount = BACKLOG if backlog else 1
    try:
        marked = tally(key, amount=amount, timeout=PROMPT_SECONDS, note=_owed_key(sender_pk), note_timeout=OWED_SECONDS)
        if marked != amount:
            return True
    except Exception:
        logger.warning("Could not mark a delivery prompt; publishing one anyway.", exc_info=True)
        return enqueue(public_id)
    if enqueue(public_id):
        return True
    with contextlib.suppress(Exception):
        cache.delete(key)  # Nothing was published: let the next message try again (the note stays).
    return False


def prompted(sender_pk: int) -> int | None:
    """A worker is about to claim this sender's due messages: later messages prompt anew.

    Returns how many messages the taken mark counted (0 if there was none; more than one when
    messages were accepted while it, or a mark that vanished before it, was pending and
    published nothing, or for a follow-up prompt), or None if that is not known: coalescing is
    off, or the cache cannot be reached (then the mark stays until it expires, PROMPT_SECONDS,
    and messages accepted meanwhile wait for the next prompt or the sweep, while this delivery
    goes on)."""
    if not settings.RELAY_COALESCE_PROMPTS:
        return None
    try:
        counted, owed = take_tally(_prompt_key(sender_pk), note=_owed_key(sender_pk))
        return max(counted, BACKLOG) if owed else counted
    except Exception:
        logger.warning("Could not clear the delivery prompt of sender %s.", sender_pk, exc_info=True)
        return None


def enqueue(public_id: str) -> bool:
    """Publish the delivery task for one message. Never raises: the sweep is the safety net."""
    from relay.tasks import deliver

    try:
        broker.send_task(deliver, [public_id])
    except Exception:
        logger.warning("Could not publish delivery of %s; the outbox sweep will retry.", public_id, exc_info=True)
        return False
    return True


def due_messages(now: datetime) -> list[str]:
    """Ids of messages whose delivery should be (re)published now, oldest due first."""
    stale_publish = now - timedelta(seconds=settings.RELAY_REQUEUE_AFTER_SECONDS)
    not_prompted = (
        Q(enqueued_at__isnull=True)
        | Q(enqueued_at__lt=stale_publish)
        # Published before it became due (a scheduled retry): that publish is not a prompt for now.
        | Q(enqueued_at__lt=F("next_attempt_at"))
    )
    queued_due = Q(status=Status.QUEUED, next_attempt_at__lte=now) & not_prompted
    lease_expired = Q(status=Status.SENDING, lease_until__lt=now)
    return list(
        Message.objects.filter(queued_due | lease_expired)
        .order_by("next_attempt_at")
        .values_list("public_id", flat=True)[:SWEEP_BATCH]
    )


def sweep() -> dict[str, int]:
    """Publish every due message once; fail those past their lifetime. Returns counts."""
    from relay.outcomes import expire_overdue

    now = timezone.now()
    expired = expire_overdue(now)
    published = 0
    for public_id in due_messages(now):
        updated = Message.objects.filter(public_id=public_id, status__in=[Status.QUEUED, Status.SENDING]).update(
            enqueued_at=now
        )
        if updated and enqueue(public_id):
            published += 1
    if published or expired:
        logger.info("outbox sweep: published %d, expired %d", published, expired)
    return {"published": published, "expired": expired}
