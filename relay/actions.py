"""Accepting a message: the one write on the send path."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils import timezone

from accounts.models import ApiKey
from billing import quota
from billing.periods import current_period
from drake import sql
from drake.errors import ApiError, IdempotencyConflict, InvalidRequest, NotFound, PermissionDenied, ServiceUnavailable
from relay import outbox
from relay.mime import address_of
from relay.minimize import minimize_subject
from relay.models import ApiRequest, IdempotencyKey, Message, OutboxContent
from relay.validation import SendRequest
from senders import crypto
from senders.models import Sender


def content_binding(public_id: str) -> str:
    return f"message:{public_id}"


def _message_id(from_email: str) -> str:
    domain = from_email.rpartition("@")[2] or "3drake.invalid"
    return f"<{secrets.token_hex(16)}@{domain}>"


IDEMPOTENCY_WINDOW = timedelta(hours=24)


def _check_idempotency_key(key: str) -> None:
    if not (1 <= len(key) <= 255) or not key.isprintable():
        raise InvalidRequest("Idempotency-Key is 1 to 255 printable characters.", field="Idempotency-Key")


def _replay(user: Any, key: str, fingerprint: str, now: datetime, request: SendRequest) -> Message | None:
    """The message an unexpired Idempotency-Key already created, or None; 409 if the body differs."""
    record = (
        IdempotencyKey.objects.filter(user=user, key=key, created_at__gte=now - IDEMPOTENCY_WINDOW)
        .select_related("message")
        .first()
    )
    if record is None:
        return None
    if record.fingerprint != fingerprint and record.fingerprint != request.unkeyed_fingerprint():
        raise IdempotencyConflict()
    return record.message


def _sender_may_send(sender: Sender | None, request: SendRequest) -> Sender:
    """The sender, if it may send `request`; raises NotFound, PermissionDenied or InvalidRequest."""
    if sender is None:
        raise NotFound("No sender with this id.", field="sender")
    if sender.is_disabled:
        raise PermissionDenied(sender.disabled_notice, field="sender")
    cap = sender.limits().recipients_per_message
    if len(request.recipients) > cap:
        raise InvalidRequest(f"This sender's provider takes at most {cap} recipients per message.", field="to")
    return sender


def _new_message(
    user: Any, sender: Sender, request: SendRequest, api_key: Any, size: int, now: datetime
) -> tuple[Message, str]:
    """The message row to write (minimized metadata only) and its content, encrypted."""
    message = Message(
        user=user,
        sender=sender,
        api_key=api_key,
        from_email=sender.from_email,
        # Bare addresses only: display names are not needed to troubleshoot delivery.
        to=[address_of(a) for a in request.to],
        cc_count=len(request.cc),
        bcc_count=len(request.bcc),
        subject=minimize_subject(request.subject, policy=user.plan.subject_policy, account_id=user.pk),
        size_approx=max(1, math.ceil(size / 1024)) * 1024,
        message_id_header=_message_id(sender.from_email),
        created_at=now,
        next_attempt_at=now,
        enqueued_at=now,
        expires_at=now + timedelta(hours=settings.RELAY_MESSAGE_LIFETIME_HOURS),
    )
    token = crypto.encrypt(
        json.dumps(request.content(), separators=(",", ":")).encode("utf-8"), binding=content_binding(message.public_id)
    )
    return message, token


def _connection() -> Any:
    # The database wrapper itself: through django.db.connection, a proxy, every field's value
    # conversion looked the connection up again (a few percent of a send's CPU).
    return connections[router.db_for_write(Message)]


def _accept_in_one_statement(
    message: Message,
    token: str,
    user_id: int,
    period_start: datetime,
    plan: Any,
    usage_record: ApiRequest | None,
    only_if: Sequence[tuple[str, list[Any]]] = (),
    connection: Any = None,
) -> bool:
    """PostgreSQL, the steady state: charge the quota and write the message, its content and
    the request's usage record in one statement, atomic by itself (one round trip and one
    commit instead of five statements and two commits: bench/README.md).

    Returns False, having written nothing, when the charge does not apply (the period's first
    message, the quota is used up, or one of the `only_if` conditions does not hold) or on
    another database; the general path in accept_message then decides, with the same outcome.
    """
    connection = connection or _connection()
    if connection.vendor != "postgresql":
        return False
    qn = connection.ops.quote_name
    charge_sql, charge_params = quota.charge_statement(user_id, period_start, plan.monthly_quota, only_if, connection)
    message_sql, message_values = sql.insert_where(message, "EXISTS (SELECT 1 FROM charged)", connection)
    content_table = qn(OutboxContent._meta.db_table)
    content_columns = (
        f"{qn(OutboxContent._meta.pk.column)}, {qn(OutboxContent._meta.get_field('content_encrypted').column)}"
    )
    usage_sql, usage_values = "", []
    if usage_record is not None:
        usage_sql, usage_values = sql.insert_where(usage_record, "EXISTS (SELECT 1 FROM message)", connection)
        usage_sql = f", usage AS ({usage_sql})"
    statement = (
        f"WITH charged AS ({charge_sql}), message AS ({message_sql} RETURNING id), "  # noqa: S608 (our names)
        f"content AS (INSERT INTO {content_table} ({content_columns}) SELECT id, %s FROM message)"
        f"{usage_sql} SELECT id FROM message"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*charge_params, *message_values, token, *usage_values])
        row = cursor.fetchone()
    if row is None:
        return False
    message.pk = row[0]
    message._state.adding = False
    message._state.db = connection.alias
    return True


def accept_message(
    user: Any,
    request: SendRequest,
    *,
    api_key: Any = None,
    size: int = 0,
    idempotency_key: str | None = None,
    usage_record: ApiRequest | None = None,
) -> tuple[Message, bool]:
    """Durably accept a message for delivery. Returns (message, replayed).

    `usage_record` (relay.usage.request_record), if given, is written in the same commit as
    the message, unless the request is a replay (replayed=True: nothing is written).

    With an Idempotency-Key, the same key and body within 24 hours return the original message
    (replayed=True) and create nothing; the same key with another body raises IdempotencyConflict.
    Two concurrent requests with one key create one message: the unique constraint decides, and
    the loser returns the winner's message.


    One transaction writes the metadata row and the encrypted content; the delivery task is
    published only after commit, carrying only the message id. If the broker is unreachable
    the message is still accepted: the outbox sweep publishes it later. If the database cannot
    commit, ServiceUnavailable is raised and nothing was queued.
    Raises NotFound (sender unknown or another account's) and PermissionDenied (sender disabled).
    """
    now = timezone.now()
    fingerprint = request.fingerprint(user.pk) if idempotency_key is not None else ""
    if idempotency_key is not None:
        _check_idempotency_key(idempotency_key)
        replayed = _replay(user, idempotency_key, fingerprint, now, request)
        if replayed is not None:
            return replayed, True
    sender = _sender_may_send(Sender.objects.of_account(user, request.sender), request)
    message, token = _new_message(user, sender, request, api_key, size, now)
    period_start, _ = current_period(user, now)
    try:
        if idempotency_key is None and _accept_in_one_statement(
            message, token, user.pk, period_start, user.plan, usage_record
        ):
            transaction.on_commit(lambda: outbox.prompt(sender.pk, message.public_id))
            return message, False
        with transaction.atomic():
            if idempotency_key is not None:
                # An expired key may be reused: it no longer protects anything.
                IdempotencyKey.objects.filter(
                    user=user, key=idempotency_key, created_at__lt=now - IDEMPOTENCY_WINDOW
                ).delete()
            sql.insert(message)
            sql.insert(OutboxContent(message=message, content_encrypted=token))
            if idempotency_key is not None:
                IdempotencyKey.objects.create(
                    user=user, key=idempotency_key, fingerprint=fingerprint, message=message, created_at=now
                )
            if usage_record is not None:
                sql.insert(usage_record)
            # Last before the commit: the charge locks the account's usage counter row, and every
            # concurrent accept of this account waits for that lock until this one commits.
            quota.charge(user, period_start, user.plan.monthly_quota)
            transaction.on_commit(lambda: outbox.prompt(sender.pk, message.public_id))
    except IntegrityError as exc:
        # A concurrent request with the same key won; its row is committed now.
        winner = _replay(user, idempotency_key, fingerprint, now, request) if idempotency_key is not None else None
        if winner is None:
            raise ServiceUnavailable() from exc
        return winner, True
    except DatabaseError as exc:
        raise ServiceUnavailable() from exc
    return message, False


def accept_from_snapshot(
    api_key: ApiKey, request: SendRequest, *, size: int = 0, usage_record: ApiRequest | None = None
) -> Message | None:
    """Accept a message for a key authenticated from this process's snapshot, without reading
    the key, account or sender first (drake.snapshots): one statement charges the quota and
    writes the message, its content and `usage_record`, only if the database still holds
    every field the snapshot gave (key not revoked, account active and not suspended, plan,
    subscription and sender as read).

    Returns the accepted message, or None having written nothing: anything but the steady
    state (no such sender, a disabled one, too many recipients, the period's first message, a
    used-up quota, a stale snapshot). The caller then authenticates from the database and
    calls accept_message, which decides everything afresh and raises the error, if any.
    Idempotency-Key requests take accept_message directly (authenticated from the database).
    Raises ServiceUnavailable if the statement fails: nothing was written (autocommit).
    """
    user = api_key.user
    try:
        sender = _sender_may_send(Sender.objects.of_account_from_snapshot(user, request.sender), request)
    except ApiError:
        return None  # accept_message raises it again, from fresh reads and a confirmed key.
    now = timezone.now()
    message, token = _new_message(user, sender, request, api_key, size, now)
    period_start, _ = current_period(user, now)
    connection = _connection()
    only_if = [*ApiKey.objects.unchanged(api_key, connection), Sender.objects.unchanged(sender, connection)]
    try:
        if not _accept_in_one_statement(
            message, token, user.pk, period_start, user.plan, usage_record, only_if, connection
        ):
            return None
    except DatabaseError as exc:
        raise ServiceUnavailable() from exc
    transaction.on_commit(lambda: outbox.prompt(sender.pk, message.public_id))
    return message
