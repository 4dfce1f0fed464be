"""Who holds a message: claiming due messages, giving untried ones back, recording sent ones.

These are the statements every delivery runs, so they are written once as SQL rather than built
by the ORM per call (building an UPDATE cost more CPU than running it: bench/README.md). They
run on PostgreSQL and on SQLite (3.35+, for RETURNING).

A claim is one conditional UPDATE: queued and due, or sending with an expired lease → sending
with a new lease and one more attempt. Whoever updates the row owns the attempt; anyone else
does nothing (a second task for one message, a racing worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from drake import sql
from relay.models import DeliveryAttempt, Message, OutboxContent, Status
from senders.models import Sender

_TABLE = Message._meta.db_table
_CONTENT = OutboxContent._meta.db_table


def _when(value: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


def _lease(now: datetime) -> object:
    return _when(now + timedelta(seconds=settings.RELAY_LEASE_SECONDS))


_CLAIM_ONE = (
    f"UPDATE {_TABLE} SET status = %s, lease_until = %s, attempts = attempts + 1 "  # noqa: S608 (our names)
    "WHERE public_id = %s AND ((status = %s AND next_attempt_at <= %s) OR (status = %s AND lease_until < %s))"
)


def _claim_one_params(public_id: str, now: datetime) -> list[object]:
    return [Status.SENDING, _lease(now), public_id, Status.QUEUED, _when(now), Status.SENDING, _when(now)]


def claim(public_id: str, now: datetime) -> bool:
    """Claim one message if it is due. True if this caller now holds it."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_ONE, _claim_one_params(public_id, now))
        return cursor.rowcount == 1


def claim_one(public_id: str, now: datetime) -> Message | None:
    """Claim one message if it is due, and return it as `claimed` does; None if it is not
    this caller's to send. On PostgreSQL one statement claims and reads it (a round trip per
    delivery task fewer than `claim` then `claimed`)."""
    if connection.vendor != "postgresql":
        return claimed(public_id) if claim(public_id, now) else None
    found = _claim_one_with_sender_and_content().rows(_claim_one_params(public_id, now))
    return _with_sender_and_content(*found[0]) if found else None


# What delivery reads of a sender's account: whether it is suspended (its messages wait).
_ACCOUNT = ("id", "suspended_at")


def _select_with_sender_and_content(head: str, source: str, where: str = "") -> sql.Select:
    """Messages (`m` in `source`) with their sender (and its account's suspension) and content,
    as delivery reads them."""
    return sql.Select(
        sql.Columns(Message, "m"),
        sql.Columns(Sender, "s"),
        sql.Columns(OutboxContent, "c"),
        sql.Columns(User, "u", only=_ACCOUNT),
        build=lambda m, s, c, u: (
            f"{head}SELECT {m}, {s}, {c}, {u} FROM {source} LEFT JOIN {Sender._meta.db_table} s ON s.id = m.sender_id "  # noqa: S608
            f"LEFT JOIN {_CONTENT} c ON c.message_id = m.id LEFT JOIN {User._meta.db_table} u ON u.id = s.user_id{where}"
        ),
    )


@cache
def _claim_one_with_sender_and_content() -> sql.Select:
    return _select_with_sender_and_content(f"WITH m AS ({_CLAIM_ONE} RETURNING *) ", "m")


def _with_sender_and_content(
    message: Message, sender: Sender | None, content: OutboxContent | None, account: User | None
) -> Message:
    Message._meta.get_field("sender").set_cached_value(message, sender)
    Message._meta.get_field("content").set_cached_value(message, content)
    if sender is not None:
        Sender._meta.get_field("user").set_cached_value(sender, account)
    return message


@cache
def _message_with_sender_and_content() -> sql.Select:
    return _select_with_sender_and_content("", f"{_TABLE} m", " WHERE m.public_id = %s")


def claimed(public_id: str) -> Message:
    """A message just claimed, with its sender and content: what
    `select_related("sender", "content").get(public_id=...)` gives, as SQL written once."""
    return _with_sender_and_content(*_message_with_sender_and_content().rows([public_id])[0])


@cache
def _sender_of_message() -> sql.Select:
    return sql.Select(
        sql.Columns(Sender, "s"),
        sql.Columns(User, "u", only=_ACCOUNT),
        build=lambda s, u: (
            f"SELECT {s}, {u} FROM {Sender._meta.db_table} s JOIN {_TABLE} m ON m.sender_id = s.id "  # noqa: S608
            f"LEFT JOIN {User._meta.db_table} u ON u.id = s.user_id WHERE m.public_id = %s"
        ),
    )


def sender_of(public_id: str) -> Sender | None:
    """The sender of a message (with its account's suspension), or None (no such message, or
    its sender was deleted)."""
    found = _sender_of_message().rows([public_id])
    if not found:
        return None
    sender, account = found[0]
    Sender._meta.get_field("user").set_cached_value(sender, account)
    return sender


def claim_more(sender: Sender, now: datetime, limit: int) -> list[Message]:
    """Claim up to `limit` more due messages of `sender` (oldest first), with their content.

    One UPDATE ... RETURNING: rows another worker holds are skipped (PostgreSQL's SKIP LOCKED)
    or, once it commits, no longer match `queued`, so a message is never claimed twice. The
    rows are picked in a MATERIALIZED CTE: as a plain `IN (SELECT ... LIMIT n SKIP LOCKED)`
    PostgreSQL may run the subquery again for each row it updates, each run skipping the rows
    the last one locked, and claim far more than `limit`. On PostgreSQL the claimed rows come
    back with their content from the same statement; SQLite (no UPDATE in a WITH) reads them
    in a second query.
    """
    params = [sender.pk, Status.QUEUED, _when(now), limit, Status.SENDING, _lease(now), Status.QUEUED, _when(now)]
    if connection.vendor == "postgresql":
        messages = []
        for message, content in _claim_with_content().rows(params):
            Message._meta.get_field("content").set_cached_value(message, content)
            messages.append(message)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_claim_sql("id"), params)
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return []
        messages = list(Message.objects.select_related("content").filter(pk__in=ids).order_by("created_at", "id"))
    for message in messages:
        message.sender = sender  # Already loaded: no query per message.
    return messages


def _claim_sql(returning: str) -> str:
    return (
        f"WITH picked AS MATERIALIZED (SELECT id FROM {_TABLE} "  # noqa: S608 (our names)
        "WHERE sender_id = %s AND status = %s AND next_attempt_at <= %s "
        f"ORDER BY next_attempt_at LIMIT %s{_skip_locked()}) "
        f"UPDATE {_TABLE} AS m SET status = %s, lease_until = %s, attempts = m.attempts + 1 "
        f"WHERE m.id IN (SELECT id FROM picked) AND m.status = %s AND m.next_attempt_at <= %s RETURNING {returning}"
    )


def _skip_locked() -> str:
    return " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""


@cache
def _claim_with_content() -> sql.Select:
    """PostgreSQL: the claim, returning each claimed message with its content, oldest first."""
    return sql.Select(
        sql.Columns(Message, "m"),
        sql.Columns(OutboxContent, "c"),
        build=lambda m, c: (
            f"WITH claimed AS ({_claim_sql(m)}) "  # noqa: S608 (our names)
            f"SELECT claimed.*, {c} FROM claimed LEFT JOIN {_CONTENT} c ON c.message_id = claimed.id "
            "ORDER BY claimed.created_at, claimed.id"
        ),
    )


def release(messages: list[Message]) -> None:
    """Give claimed, untried messages back: queued, due now, the claim's attempt uncounted."""
    if not messages:
        return
    now = _when(timezone.now())
    placeholders = ", ".join(["%s"] * len(messages))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET status = %s, lease_until = NULL, next_attempt_at = %s, enqueued_at = %s, "  # noqa: S608
            f"attempts = attempts - 1 WHERE status = %s AND id IN ({placeholders})",
            [Status.QUEUED, now, now, Status.SENDING, *[m.pk for m in messages]],
        )


def still_held(sender: Sender, messages: list[Message]) -> bool:
    """Whether every one of `messages`, claimed for `sender`, is still claimed and still that
    sender's, the sender unchanged, neither disabled nor paused, and its account not suspended:
    false once the account was deleted (its messages with it) or suspended, the sender
    disconnected (its messages keep no sender), disabled, paused (as Sender.is_paused reads it)
    or changed (a new host or password: the batch's connection is the old one's, as
    transport._key tells the pool)."""
    placeholders = ", ".join(["%s"] * len(messages))
    senders, accounts = Sender._meta.db_table, User._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {_TABLE} m JOIN {senders} s ON s.id = m.sender_id "  # noqa: S608 (our names)
            f"JOIN {accounts} u ON u.id = s.user_id WHERE m.id IN ({placeholders}) AND m.status = %s "
            "AND s.id = %s AND s.updated_at = %s AND s.disabled_at IS NULL AND u.suspended_at IS NULL "
            "AND (s.paused_at IS NULL OR s.paused_until <= %s)",
            [
                *[m.pk for m in messages],
                Status.SENDING,
                sender.pk,
                connection.ops.adapt_datetimefield_value(sender.updated_at),
                _when(timezone.now()),
            ],
        )
        return cursor.fetchone()[0] == len(messages)


@cache
def _still_claimed() -> str:
    """record_sent's condition on an attempt row: its message is one the statement updated."""
    column = connection.ops.quote_name(DeliveryAttempt._meta.get_field("message").column)
    return f"row.{column} IN (SELECT id FROM updated)"  # noqa: S608 (our names)


@dataclass
class Sent:
    """A message the provider accepted: when the attempt started and ended, and its reply."""

    message: Message
    started: datetime
    done: datetime
    code: int
    reply: str  # Already cleaned (smtp.clean_reply).
    provider_message_id: str
    refused: dict


def record_sent(sent: list[Sent]) -> None:
    """Record messages the provider accepted, atomically: the attempt rows, the messages'
    terminal state, and the deletion of their content (nothing of it remains). One statement
    on PostgreSQL (one round trip, no BEGIN and COMMIT); a transaction of three elsewhere.
    A message some recipients took in an earlier attempt (relay.refusals) keeps that
    attempt's `sent_at`.

    Delivery is at least once: a worker that dies after the provider's 250 and before this
    commits leaves the message claimed; once its lease runs out it is sent again.

    Only messages still claimed get their attempt: an account deleted while its batch was
    going out took its messages with it, and an attempt row for one of them would break the
    whole record (its foreign key) for the batch's other messages."""
    if not sent:
        return
    attempts = [
        DeliveryAttempt(
            message=item.message,
            number=item.message.attempts,
            started_at=item.started,
            finished_at=item.done,
            outcome=Status.SENT,
            smtp_code=item.code,
            reply=item.reply,
        )
        for item in sent
    ]
    adapt_json = connection.ops.adapt_json_value
    if connection.vendor == "postgresql":
        values = [
            (item.message.pk, _when(item.done), item.provider_message_id, adapt_json(item.refused, DjangoJSONEncoder))
            for item in sent
        ]
        insert_attempts, attempt_params = sql.insert_rows(attempts, connection, where=_still_claimed())
        rows = ", ".join(["(%s::bigint, %s::timestamptz, %s::varchar, %s::jsonb)"] * len(values))
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH sent (id, done, provider_message_id, refused) AS (VALUES {rows}), "  # noqa: S608 (our names)
                f"updated AS (UPDATE {_TABLE} AS m SET status = %s, sent_at = COALESCE(m.sent_at, sent.done), "
                "finished_at = sent.done, lease_until = NULL, last_error = NULL, "
                "provider_message_id = sent.provider_message_id, "
                "refused_recipients = sent.refused FROM sent WHERE m.id = sent.id AND m.status = %s RETURNING m.id), "
                f"attempts AS ({insert_attempts}), "
                f"deleted AS (DELETE FROM {_CONTENT} WHERE message_id IN (SELECT id FROM sent)) "
                "SELECT 1",
                [*(value for row in values for value in row), Status.SENT, Status.SENDING, *attempt_params],
            )
        return
    rows = [
        [
            Status.SENT,
            _when(item.done),
            _when(item.done),
            item.provider_message_id,
            adapt_json(item.refused, DjangoJSONEncoder),
            item.message.pk,
            Status.SENDING,
        ]
        for item in sent
    ]
    placeholders = ", ".join(["%s"] * len(sent))
    with transaction.atomic(), connection.cursor() as cursor:
        held = set(
            Message.objects.filter(pk__in=[item.message.pk for item in sent], status=Status.SENDING).values_list(
                "pk", flat=True
            )
        )
        if held:
            sql.insert_many([attempt for attempt in attempts if attempt.message_id in held])
        # psycopg sends these as one pipeline: one round trip for the batch.
        cursor.executemany(
            f"UPDATE {_TABLE} SET status = %s, sent_at = COALESCE(sent_at, %s), finished_at = %s, lease_until = NULL, "  # noqa: S608
            "last_error = NULL, provider_message_id = %s, refused_recipients = %s WHERE id = %s AND status = %s",
            rows,
        )
        cursor.execute(
            f"DELETE FROM {_CONTENT} WHERE message_id IN ({placeholders})",  # noqa: S608
            [item.message.pk for item in sent],
        )
