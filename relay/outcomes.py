"""What an attempt comes to, written: a retry, a deferral or the end of a message, each in one
transaction with its attempt record; at the end the encrypted content is deleted in that same
transaction. relay.delivery decides which; this module writes it, and so does the sweep's
expiry of messages whose lifetime ended."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from relay import refusals
from relay.actions import content_binding
from relay.models import DeliveryAttempt, Message, OutboxContent, Status
from senders import crypto, smtp


class Outcome:
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    DEFERRED = "deferred"
    # Accepted for some recipients, others deferred (relay.refusals): the message waits for them.
    PARTIAL = "partial"


def backoff(attempt: int) -> timedelta:
    """Exponential with full jitter, never below RELAY_RETRY_MIN_SECONDS."""
    ceiling = min(settings.RELAY_RETRY_MAX_SECONDS, settings.RELAY_RETRY_BASE_SECONDS * 2 ** max(0, attempt - 1))
    jittered = random.uniform(0, ceiling)  # noqa: S311  (jitter, not security)
    return timedelta(seconds=max(settings.RELAY_RETRY_MIN_SECONDS, jittered))


@dataclass
class Progress:
    """What an attempt that leaves some recipients waiting writes besides its outcome: the
    content with only them left in `pending`, and the message's record of the others."""

    content: dict[str, Any]
    pending: list[str]
    refused: dict[str, Any]  # refused_recipients after the attempt (relay.refusals)
    sent_at: datetime | None  # When some recipient first accepted the message
    provider_message_id: str


def retry(
    message: Message,
    started: datetime,
    error: tuple[str, int | None, str],
    *,
    progress: Progress | None = None,
    outcome: str = Outcome.RETRY,
) -> str:
    next_at = timezone.now() + backoff(message.attempts + 1)
    if next_at >= message.expires_at:
        return finish(
            message,
            started,
            error=("expired", error[1], f"Gave up after {message.attempts} attempts: {error[2]}"),
            progress=progress,
            # A partial attempt still delivered to some: its record says so.
            outcome=Outcome.PARTIAL if outcome == Outcome.PARTIAL else Outcome.FAILED,
        )
    fields = {
        "status": Status.QUEUED,
        "next_attempt_at": next_at,
        "lease_until": None,
        "last_error": error_dict(error),
    }
    if progress is not None:
        fields.update(_progress_fields(progress))
    with transaction.atomic():
        if Message.objects.filter(pk=message.pk, status=Status.SENDING).update(**fields):
            if progress is not None:
                _keep_pending(message, progress)
            record_attempt(message, started, outcome, error)
    return outcome


def _progress_fields(progress: Progress) -> dict[str, Any]:
    return {
        "sent_at": progress.sent_at,
        "provider_message_id": progress.provider_message_id,
        "refused_recipients": progress.refused,
    }


def _keep_pending(message: Message, progress: Progress) -> None:
    """The content again, with only the recipients still to be tried in `pending`; encrypted
    and bound to the message as when it was accepted (relay.actions)."""
    if progress.pending == progress.content.get("pending"):
        return  # Deferred again, all of them: nothing changed.
    plaintext = json.dumps({**progress.content, "pending": progress.pending}, separators=(",", ":")).encode("utf-8")
    token = crypto.encrypt(plaintext, binding=content_binding(message.public_id))
    OutboxContent.objects.filter(message_id=message.pk).update(content_encrypted=token)


def defer(
    message: Message, until: datetime, error: tuple[str, int | None, str], *, started: datetime | None = None
) -> str:
    """Wait without counting an attempt (the sender is paused); fail if the lifetime ends first."""
    if until >= message.expires_at:
        return finish(
            message,
            started or timezone.now(),
            error=("expired", error[1], f"Not delivered in time: {error[2]}"),
        )
    with transaction.atomic():
        deferred = Message.objects.filter(pk=message.pk, status=Status.SENDING).update(
            status=Status.QUEUED,
            next_attempt_at=until,
            lease_until=None,
            last_error=error_dict(error),
            attempts=F("attempts") - (0 if started is not None else 1),
        )
        if deferred and started is not None:
            record_attempt(message, started, Outcome.DEFERRED, error)
    return Outcome.DEFERRED


def finish(
    message: Message,
    started: datetime,
    *,
    error: tuple[str, int | None, str],
    progress: Progress | None = None,
    outcome: str = Outcome.FAILED,
) -> str:
    """End a message for good: one transaction with its attempt record; the content goes.
    Only while it is still `sending`: a message another worker took over after this one's
    lease ran out, and sent, stays sent.

    `failed`, unless some recipient already has it (the others were deferred: relay.refusals):
    then `sent`, the recipients still waiting counted as refused, and `error` why they were
    given up."""
    now = timezone.now()
    fields = {"status": Status.FAILED, "lease_until": None, "finished_at": now, "last_error": error_dict(error)}
    if progress is not None:
        fields.update(_progress_fields(progress))
    if fields.get("sent_at", message.sent_at) is not None:
        refused = progress.refused if progress is not None else message.refused_recipients
        fields["status"] = Status.SENT
        fields["refused_recipients"] = refusals.give_up(refused, code=error[1], expired=error[0] == "expired")
    with transaction.atomic():
        ended = Message.objects.filter(pk=message.pk, status=Status.SENDING).update(**fields)
        if ended:
            record_attempt(message, started, outcome, error)
            # Terminal: nothing of the content remains.
            OutboxContent.objects.filter(message_id=message.pk).delete()
    return outcome


def expire_overdue(now: datetime) -> int:
    """Fail messages whose lifetime ended while they waited (e.g. a sender paused for good), or
    while claimed by a worker that is gone (its lease ran out: a worker killed again and again
    on one message, or one whose delivery raised)."""
    overdue_now = Q(expires_at__lte=now) & (Q(status=Status.QUEUED) | Q(status=Status.SENDING, lease_until__lte=now))
    overdue = list(Message.objects.filter(overdue_now).values_list("pk", "sent_at")[:1000])
    for pk, sent_at in overdue:
        with transaction.atomic():
            fields = {
                "status": Status.FAILED,
                "lease_until": None,
                "finished_at": now,
                "last_error": {
                    "category": "expired",
                    "smtp_code": None,
                    "message": "Not delivered within its lifetime.",
                },
            }
            if sent_at is not None:
                # Some recipients have it; the others the server deferred ran out of time
                # (relay.refusals). Read under lock: a worker may be recording an attempt.
                refused = (
                    Message.objects.select_for_update()
                    .filter(overdue_now, pk=pk)
                    .values_list("refused_recipients", flat=True)
                    .first()
                )
                if refused is None:
                    continue
                fields["status"] = Status.SENT
                fields["refused_recipients"] = refusals.give_up(refused, code=None, expired=True)
                fields["last_error"] = {
                    "category": "expired",
                    "smtp_code": None,
                    "message": "The recipients the server deferred were not delivered within the message's lifetime.",
                }
            updated = Message.objects.filter(overdue_now, pk=pk).update(**fields)
            if updated:
                OutboxContent.objects.filter(message_id=pk).delete()
    return len(overdue)


def error_dict(error: tuple[str, int | None, str] | None) -> dict[str, Any] | None:
    if error is None:
        return None
    category, code, text = error
    return {"category": category, "smtp_code": code, "message": smtp.clean_reply(text)}


def record_attempt(
    message: Message, started: datetime, outcome: str, error: tuple[str, int | None, str] | None
) -> None:
    category, code, text = error or ("", None, "")
    DeliveryAttempt.objects.create(
        message=message,
        number=message.attempts,
        started_at=started,
        finished_at=timezone.now(),
        outcome=outcome,
        category=category,
        smtp_code=code,
        reply=smtp.clean_reply(text),
    )
