"""Delivering one message: claim, send, record. Idempotent and safe to run twice at once.

A message is claimed by one conditional UPDATE (queued and due, or sending with an expired
lease → sending with a new lease). Whoever updates the row owns the attempt; anyone else does
nothing. The outcome is written in one transaction with the attempt record (relay.outcomes), and at a terminal
state (sent or failed) the encrypted content is deleted in that same transaction. Recipients
the server deferred while it accepted others are tried again on their own (relay.refusals).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from relay import claims, mime, outbox, outcomes, pacing, refusals, transport
from relay.actions import content_binding
from relay.minimize import without_content
from relay.models import DeliveryAttempt, Message, OutboxContent
from relay.outcomes import Outcome
from senders import crypto, smtp
from senders.actions import UNREADABLE_PASSWORD, pause_sender
from senders.models import Sender
from senders.presets import hint_for

logger = logging.getLogger(__name__)

_PROVIDER_QUOTA_MARKERS = ("5.4.5", "submissionquotaexceeded", "daily user sending limit", "quota exceeded")
# A recipient's mailbox over its quota (RFC 3463 X.2.2, "Quota exceeded" in Dovecot's and
# Postfix's words): that recipient's problem, not the sender's daily limit.
_MAILBOX_FULL = re.compile(r"\b[45]\.2\.2\b")


# How far ahead of a worker's clock a web host's may run and its messages still be claimed on
# time: the claim after clearing a sender's prompt mark must see every message accepted before.
CLOCK_TOLERANCE = timedelta(seconds=1)


# A batch goes on from its claim with its messages' content and the sender's login in hand;
# while it sends, it looks again this often (one statement) that they are still its to send:
# an account deleted or suspended, or a sender disconnected, disabled, paused or changed, meanwhile
# stops it. A fast batch (a local relay) looks never, a slow one (a real provider) every few
# messages.
RECHECK_SECONDS = 0.5
ACCOUNT_SUSPENDED = "The account is suspended: its messages wait until support lifts the suspension."


def _paused_recheck() -> timedelta:
    return timedelta(seconds=settings.RELAY_PAUSED_RECHECK_SECONDS)


def deliver(public_id: str, *, batch: int = 1) -> str | None:
    """Try to deliver one message now. Returns its outcome, or None if someone else has it.

    With batch > 1 the worker also claims up to batch - 1 other due messages of the same sender
    and sends them one after another over the same connection, recording the sent ones in one
    transaction: a busy sender's queue drains with a few statements per batch instead of a few
    per message. With one pending task per sender (relay.outbox.prompt) most of those messages
    have no task of their own; a task whose message was already taken drains its sender instead.
    Under light load a batch is the one message, so nothing waits for a batch to fill.
    """
    now = timezone.now()
    message = claims.claim_one(public_id, now)
    if message is None:
        if batch > 1 and settings.RELAY_COALESCE_PROMPTS:
            _drain(public_id, now, batch)
        return None
    sender = message.sender

    if sender is None:
        return outcomes.finish(message, timezone.now(), error=("sender_deleted", None, "The sender was deleted."))
    if sender.is_disabled:
        # Support stopped the sender, likely for what it was sending: nothing queued before goes
        # out, not even if it is enabled again (the customer sends again what still matters).
        outbox.prompted(sender.pk)
        return outcomes.finish(message, timezone.now(), error=("sender_disabled", None, sender.disabled_notice))
    if sender.user.suspended_at is not None:
        # Support suspended the account: its queued messages wait (the claim read the account
        # with the sender), and go out if it is unsuspended within their lifetime.
        outbox.prompted(sender.pk)
        return outcomes.defer(message, now + _paused_recheck(), ("account_suspended", None, ACCOUNT_SUSPENDED))
    if sender.is_paused(now):
        # This task may be the sender's pending prompt: let the next message publish its own.
        outbox.prompted(sender.pk)
        until = sender.paused_until or now + _paused_recheck()
        return outcomes.defer(message, until, ("sender_paused", None, sender.paused_reason or "The sender is paused."))
    if batch == 1:
        return _send_batch(sender, [message], now)
    return _send_with_backlog(sender, [message], batch - 1, now)


def _drain(public_id: str, now: datetime, batch: int) -> None:
    """This task's own message was taken (by another worker's batch), but with one prompt per
    sender (relay.outbox.prompt) the task may be what the sender's other due messages wait on:
    claim and send those."""
    sender = claims.sender_of(public_id)
    if sender is None:
        return
    if sender.is_disabled or sender.user.suspended_at is not None or sender.is_paused(now):
        outbox.prompted(sender.pk)
        return  # Each due message's own task (the sweep's, if none) defers or fails it.
    _send_with_backlog(sender, [], batch, now)


def _send_with_backlog(sender: Sender, claimed: list[Message], limit: int, now: datetime) -> str | None:
    """Send `claimed` with up to `limit` more of the sender's due messages; the first one's
    outcome (None if there was nothing to send).

    The prompt mark is taken first, and the claim takes the time after that (see
    relay.outbox.prompt for why that order), allowing CLOCK_TOLERANCE for a web host's clock
    ahead of this one's: a message accepted meanwhile is due for this claim. A mark that counted
    only its publisher's message means no message waits on a pending prompt: nothing more is
    claimed (one statement fewer per task when a sender's messages do not queue up). Without a
    mark (a task the sweep published, or another task took the mark) the claim runs, so a
    backlog left by a broker outage still goes out in batches. A full batch may leave more: the
    next prompt goes out before sending, so another worker takes the next batch meanwhile, or,
    for a sender with a single connection, after it (a second worker would only wait for the
    connection and give its batch back).
    """
    waiting = outbox.prompted(sender.pk)
    if waiting == 1:
        backlog: list[Message] = []
    else:
        backlog = claims.claim_more(sender, timezone.now() + CLOCK_TOLERANCE, limit)
    messages = [*claimed, *backlog]
    follow_up = len(backlog) == limit and settings.RELAY_COALESCE_PROMPTS
    if follow_up and sender.limits().connections > 1:
        outbox.prompt(sender.pk, messages[-1].public_id, backlog=True)
        follow_up = False
    try:
        return _send_batch(sender, messages, now) if messages else None
    finally:
        if follow_up:
            outbox.prompt(sender.pk, messages[-1].public_id, backlog=True)


def _send_batch(sender: Sender, messages: list[Message], now: datetime) -> str:
    """Send claimed messages of one sender; returns the first one's outcome.

    The batch stops at the first message that does not go out (the cause may be the sender's:
    a refused login, a throttle, a dropped connection) or when half the task's time limit is
    spent; the messages not tried go back to the queue with their attempt uncounted and a new
    task each, so each one's own task decides again (paused sender, pace) exactly as alone.
    A batch of which the pace lets none go now waits for it whole.
    """
    results: dict[int, str] = {}
    try:
        allowed = pacing.reserve(sender, now, len(messages))
    except pacing.PaceLimited as paced:
        # None may go before `paced.until`: each waits for it here. Given back due now, each
        # one's task would claim the others again, find the pace spent and give them back
        # with a task each, a backlog's tasks growing with its square every minute.
        waiting = [_paced(message, paced) for message in messages]
        return waiting[0]
    started = time.monotonic() - max(0.0, (timezone.now() - now).total_seconds())  # When the claim was made.
    budget = started + settings.RELAY_TASK_TIME_LIMIT / 2
    # Celery enforces no time limit on the threads pool the worker runs (deploy.md): the
    # sessions end by the task's time limit themselves, so the claim's lease (RELAY_LEASE_SECONDS
    # from `now`) outlasts every send, and no other worker takes a message over mid-send.
    deadline = started + settings.RELAY_TASK_TIME_LIMIT
    sent: list[claims.Sent] = []
    trying = None
    tried = 0  # Of the `allowed` the pace counted.
    looked = time.monotonic()
    try:
        for index, message in enumerate(messages[:allowed]):
            if index and time.monotonic() > budget:
                break
            if index and time.monotonic() - looked >= RECHECK_SECONDS:
                if not claims.still_held(sender, messages[index:allowed]):
                    break  # The rest go back; each one's own task finds what became of it.
                looked = time.monotonic()
            trying, tried = message, tried + 1
            try:
                outcome = _send_one(sender, message, sent, deadline)
            except pacing.PaceLimited as paced:
                # Every connection of the sender stayed busy (RELAY_CONNECTION_WAIT_SECONDS):
                # none of the rest goes before one frees either. Given back, each one's task
                # would hold a worker thread as long again, and give the others back again.
                trying, tried = None, tried - 1
                results.update((waiting.pk, _paced(waiting, paced)) for waiting in messages[index:])
                break
            trying = None
            if outcome is not None:
                results[message.pk] = outcome
                if outcome != Outcome.PARTIAL:  # The sender's server took the message: go on.
                    break
    finally:
        # Whatever happens next, what the provider accepted is recorded as sent, and the
        # messages not tried go back. One whose sending raised keeps its claim: it is taken
        # again once its lease runs out (its attempt counted), until its lifetime ends.
        claims.record_sent(sent)
        results.update((item.message.pk, Outcome.SENT) for item in sent)
        _give_back([m for m in messages if m.pk not in results and m is not trying])
        # Those the pace let go and that were not tried: counted again when they are.
        with contextlib.suppress(Exception):  # Not given back, they only wait longer.
            pacing.unreserve(sender, now, allowed - tried)
    return results[messages[0].pk]


def _paced(message: Message, paced: pacing.PaceLimited) -> str:
    return outcomes.defer(message, paced.until, ("paced", None, f"Waiting for the sender's pace: {paced.reason}."))


def _give_back(messages: list[Message]) -> None:
    """Untried messages of a batch: back to the queue, each with a new task to decide alone."""
    claims.release(messages)
    for message in messages:
        outbox.enqueue(message.public_id)


def _send_one(sender: Sender, message: Message, sent: list[claims.Sent], deadline: float | None = None) -> str | None:
    """Send one claimed message. Appends it to `sent` on success (None); else records the
    outcome (retry, defer, fail) and returns it. Raises PaceLimited, nothing recorded, when
    every connection of the sender is busy."""
    started = timezone.now()
    try:
        content = _content(message)
    except crypto.DecryptionError:
        # Most likely under a key this worker's FIELD_ENCRYPTION_KEYS lacks for now (a web process
        # restarted with a new key first, a rotation run before the worker restarted): it waits,
        # as a sender's unreadable password does, for a worker that has it or its lifetime's end.
        logger.warning("Content of %s does not decrypt under this worker's keys; it waits", message.public_id)
        error = ("content_unreadable", None, "The content could not be read yet.")
        return outcomes.defer(message, timezone.now() + _paused_recheck(), error, started=started)
    except (OutboxContent.DoesNotExist, ValueError):
        logger.exception("Content of %s cannot be read", message.public_id)
        return outcomes.finish(message, started, error=("content_unreadable", None, "The content could not be read."))
    try:
        msg = mime.build_message(
            content,
            from_email=sender.from_email,
            from_name=sender.from_name,
            message_id=message.message_id_header,
            date=message.created_at,
        )
        data = mime.to_wire(msg)
        # Once some recipients have it, only those the server deferred (relay.refusals): the
        # same message (Message-ID, Date, headers; Bcc in no header) to the rest of its envelope.
        recipients = content.get("pending") or mime.envelope_recipients(content)
    except Exception as exc:  # noqa: BLE001 (whatever the email package raises: it would raise again)
        # Validation refuses what the email package cannot write; this is a message accepted
        # before a rule came in, or a case no rule knows yet. The exception's text may quote
        # the content: only its kind is logged and kept.
        logger.error("Message %s cannot be built: %s", message.public_id, type(exc).__name__)  # noqa: TRY400
        return outcomes.finish(
            message, started, error=("content_invalid", None, f"The message could not be built ({type(exc).__name__}).")
        )
    try:
        result = transport.send(sender, sender.from_email, recipients, data, deadline=deadline)
    except crypto.DecryptionError:
        # The sender's stored password: the key it was encrypted with has left
        # FIELD_ENCRYPTION_KEYS. Nothing retried would read it: pause, keep the messages waiting.
        pause_sender(sender, UNREADABLE_PASSWORD)
        error = ("secret_unreadable", None, UNREADABLE_PASSWORD)
        return outcomes.defer(message, timezone.now() + _paused_recheck(), error, started=started)
    except smtp.SmtpFailure as failure:
        return _smtp_failure(message, started, replace(failure, message=without_content(failure.message, content)))
    except transport.StageRefused as refused:
        reply = refusals.without_cc_bcc(refused.reply, content) if refused.stage == "rcpt" else refused.reply
        return _refused(message, started, refused.stage, refused.code, without_content(reply, content))
    except transport.RecipientsAllRefused as refused:
        all_refused = refusals.unnamed(refused.refused, content)
        quota = next(((c, r) for c, r in all_refused.values() if _is_provider_quota(c, r)), None)
        if quota is not None:
            # The daily limit said to RCPT (a quota counted per recipient): as at MAIL, the
            # sender waits for tomorrow; read as "every recipient rejected", each of its
            # messages failed for good, one by one.
            return _refused(message, started, "rcpt", *quota)
        return _all_refused(message, started, content, all_refused)
    reply = smtp.clean_reply(without_content(result.reply, content))  # Cut once the content is out.
    deferred, refused_for_good = refusals.split(refusals.unnamed(result.refused, content))
    if deferred:
        return _partly_sent(message, started, content, reply, deferred, refused_for_good)
    sent.append(
        claims.Sent(
            message=message,
            started=started,
            done=timezone.now(),
            code=result.code,
            reply=reply,
            # The first part's, where the server deferred some recipients before (relay.refusals).
            provider_message_id=message.provider_message_id or provider_message_id(reply),
            refused=refusals.tally(message.refused_recipients, refused_for_good),
        )
    )
    return None


def _partly_sent(
    message: Message,
    started: datetime,
    content: dict[str, Any],
    reply: str,
    deferred: refusals.Refused,
    refused_for_good: refusals.Refused,
) -> str:
    """The server accepted the message for some recipients and deferred others (a 4xx at RCPT,
    relay.refusals): it waits for those as after a transient failure of the whole message
    (backoff, lifetime), with only them left in its content's `pending`.

    The guarantee is the one every message has (claims.record_sent): the accepted recipients
    leave `pending` in the transaction that records this attempt, so once it commits no retry
    sends to them again. A worker that dies between the server's 250 and that commit leaves
    the message claimed for all of this attempt's recipients: once its lease runs out it is
    sent to all of them again (at least once, nothing lost). Written at once, not with the
    batch's sent messages, to keep that window as short as it is."""
    progress = outcomes.Progress(
        content=content,
        pending=list(deferred),
        refused=refusals.tally(message.refused_recipients, refused_for_good, deferred),
        sent_at=message.sent_at or timezone.now(),
        provider_message_id=message.provider_message_id or provider_message_id(reply),
    )
    code, text = next(iter(deferred.values()))
    return outcomes.retry(
        message, started, ("recipient_deferred", code, text), progress=progress, outcome=Outcome.PARTIAL
    )


def _all_refused(message: Message, started: datetime, content: dict[str, Any], refused: refusals.Refused) -> str:
    """Every recipient of the attempt refused at RCPT: tried again if any was only deferred."""
    deferred, refused_for_good = refusals.split(refused)
    progress = None
    code, reply = next(iter((deferred or refused).values()))
    if message.sent_at is not None:
        # The recipients deferred before, and some recipient has the message: those refused for
        # good now are counted, those deferred again wait on, and the message ends `sent`.
        progress = outcomes.Progress(
            content=content,
            pending=list(deferred),
            refused=refusals.tally(message.refused_recipients, refused_for_good, deferred),
            sent_at=message.sent_at,
            provider_message_id=message.provider_message_id,
        )
        if deferred:
            return outcomes.retry(message, started, ("recipient_deferred", code, reply), progress=progress)
    elif deferred:
        return outcomes.retry(message, started, ("recipient_deferred", code, reply))
    outcome = outcomes.finish(message, started, error=("recipient_rejected", code, reply), progress=progress)
    _check_abuse(message.sender)
    return outcome


def _content(message: Message) -> dict[str, Any]:
    token = message.content.content_encrypted  # Selected with the message: no extra query.
    return json.loads(crypto.decrypt(token, binding=content_binding(message.public_id)))


def _smtp_failure(message: Message, started: datetime, failure: smtp.SmtpFailure) -> str:
    error = (failure.category, failure.smtp_code, failure.message)
    sender = message.sender
    if failure.category == "auth_failed" and not failure.transient:
        # Logging in again and again gets mailboxes locked: pause, keep the messages waiting.
        hint = hint_for(sender.provider, failure.smtp_code, failure.message, failure.category)
        pause_sender(sender, f"The provider refused the login ({failure.smtp_code}). {hint}")
        return outcomes.defer(message, timezone.now() + _paused_recheck(), error, started=started)
    if failure.smtp_code and _is_throttle(failure.smtp_code, failure.message):
        return _throttled(message, started, failure.smtp_code, failure.message)
    if failure.transient:
        return outcomes.retry(message, started, error)
    outcome = outcomes.finish(message, started, error=error)
    _check_abuse(sender)
    return outcome


def _refused(message: Message, started: datetime, stage: str, code: int, reply: str) -> str:
    if _is_provider_quota(code, reply):
        # The provider's daily sending limit: wait for tomorrow instead of failing the message.
        tomorrow = (timezone.now() + timedelta(days=1)).replace(hour=0, minute=5, second=0, microsecond=0)
        pause_sender(
            message.sender, f"The provider's sending quota is used up ({code}); paused until tomorrow.", until=tomorrow
        )
        return outcomes.defer(message, tomorrow, ("provider_quota", code, reply), started=started)
    if _is_throttle(code, reply):
        return _throttled(message, started, code, reply)
    if 400 <= code < 500:
        return outcomes.retry(message, started, ("deferred_by_provider", code, reply))
    outcome = outcomes.finish(message, started, error=("message_rejected", code, reply))
    _check_abuse(message.sender)
    return outcome


def _is_provider_quota(code: int, reply: str) -> bool:
    """The provider's daily sending limit (Gmail's 550 5.4.5, Microsoft's SubmissionQuotaExceeded)."""
    lowered = reply.lower()
    return (
        code in (550, 554, 452, 451, 421)
        and any(marker in lowered for marker in _PROVIDER_QUOTA_MARKERS)
        and not _MAILBOX_FULL.search(reply)
    )


_THROTTLE_CODES = {421: "4.7.0", 432: "4.3.2", 450: "4.2.1", 454: "4.7.0"}


def _is_throttle(code: int, reply: str) -> bool:
    """A provider saying "slow down" (Microsoft's 432 4.3.2 concurrency, Gmail's 421 4.7.0, ...)."""
    status = _THROTTLE_CODES.get(code)
    return status is not None and status in reply


def _throttled(message: Message, started: datetime, code: int, reply: str) -> str:
    until = pacing.throttle_pause_until()
    pause_sender(message.sender, f"The provider asked to slow down ({code} {reply[:80]}).", until=until)
    return outcomes.defer(message, until, ("provider_throttled", code, reply), started=started)


def _check_abuse(sender: Sender | None) -> None:
    """Pause a sender whose recent deliveries mostly fail (bad credentials, mass rejections)."""
    if sender is None:
        return
    since = timezone.now() - timedelta(minutes=settings.ABUSE_WINDOW_MINUTES)
    # Messages a disable failed never reached the provider: they say nothing of the sender now.
    attempts = DeliveryAttempt.objects.filter(message__sender=sender, started_at__gte=since)
    recent = attempts.exclude(category="sender_disabled").aggregate(
        total=Count("id"), failed=Count("id", filter=Q(outcome=Outcome.FAILED))
    )
    total, failed = recent["total"], recent["failed"]
    if total >= settings.ABUSE_MIN_ATTEMPTS and failed / total >= settings.ABUSE_FAILURE_RATIO:
        pause_sender(
            sender,
            f"Paused automatically: {failed} of the last {total} deliveries failed. Check the delivery log, "
            "then update or verify the sender to resume.",
        )


def provider_message_id(reply: str) -> str:
    """The provider's id for the message, where its final 250 reply carries one.

    Gmail: "2.0.0 OK  1700000000 a1b2c3-xyz.123 - gsmtp"; Microsoft: "2.0.0 OK <id@host> [Hostname=...]";
    Postfix and most others: "2.0.0 Ok: queued as 4ABC123".
    """
    for pattern in (
        r"queued as ([A-Za-z0-9.\-_]+)",
        r"<([^<>\s]{1,150})>",
        r"OK\s+\d+\s+(\S+)\s+-\s+gsmtp",
        r"2\.0\.0 OK ([A-Za-z0-9.\-_]{6,})",
    ):
        match = re.search(pattern, reply, flags=re.IGNORECASE)
        if match:
            return match.group(1)[:200]
    return ""
