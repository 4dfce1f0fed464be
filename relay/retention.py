"""Retention: raw operational logs older than the plan's window are folded into daily counts, then deleted.

Each batch is one transaction: its rows are counted into DailyUsage and deleted together, so an
interrupted run leaves nothing half-done and a second run finds nothing left to do. Two runs at
once (an operator's while beat's goes on, or the task redelivered after the broker's visibility
timeout) share the work: a batch locks its rows, skipping those another run holds, and adds to
the counts in one statement. Memory stays bounded: a batch is a list of primary keys,
aggregation happens in the database.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, Count, F, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Concat, TruncDate
from django.utils import timezone

from relay.models import TERMINAL, ApiRequest, DailyUsage, IdempotencyKey, Message

Progress = Callable[[str], None]


@dataclass
class Report:
    messages: int = 0
    requests: int = 0
    ips_truncated: int = 0
    security_events: int = 0
    idempotency_keys: int = 0
    accounts: int = 0
    aggregates: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"Rotated {self.messages} message record(s) and {self.requests} request record(s) of {self.accounts} "
            f"account(s) into daily aggregates; truncated {self.ips_truncated} IP address(es); "
            f"removed {self.security_events} old security event(s) and {self.idempotency_keys} Idempotency-Key(s) "
            "past their 24 hours."
        )


def truncate_ip(value: str) -> str:
    address = ipaddress.ip_address(value)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{value}/{prefix}", strict=False).network_address)


def _add(user_id: int, day: date, metric: str, dimension: str, n: int) -> None:
    """Add `n` to a DailyUsage count, creating it if need be, in one statement: a count another
    run created meanwhile is added to, not refused by the unique constraint."""
    qn = connection.ops.quote_name
    table = qn(DailyUsage._meta.db_table)
    columns = ", ".join(qn(DailyUsage._meta.get_field(name).column) for name in ("user", "day", "metric", "dimension"))
    count = qn("count")
    sql = (
        f"INSERT INTO {table} ({columns}, {count}) VALUES (%s, %s, %s, %s, %s) "  # noqa: S608 (our names)
        f"ON CONFLICT ({columns}) DO UPDATE SET {count} = {table}.{count} + EXCLUDED.{count}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, connection.ops.adapt_datefield_value(day), metric, dimension, n])


def _fold(user_id: int, rows: QuerySet, metric: str, dimension: Any, report: Report) -> None:
    """Add counts of `rows` per day and `dimension` (an expression) to DailyUsage."""
    counted = rows.annotate(day=TruncDate("created_at"), dim=dimension).values("day", "dim").annotate(n=Count("id"))
    for row in counted:
        if row["dim"] in (None, ""):
            continue
        _add(user_id, row["day"], metric, str(row["dim"])[:120], row["n"])
        report.aggregates[metric] = report.aggregates.get(metric, 0) + row["n"]


def _locked_batch(old: QuerySet) -> list[int]:
    """Up to RETENTION_BATCH primary keys of `old`, locked until the transaction ends; rows another
    run has locked (it is folding and deleting them) are skipped, so none is counted twice."""
    skip = connection.features.has_select_for_update_skip_locked
    return list(old.select_for_update(skip_locked=skip).values_list("pk", flat=True)[: settings.RETENTION_BATCH])


def _rotate_messages(user_id: int, cutoff: datetime, report: Report, progress: Progress) -> None:
    old = Message.objects.filter(user_id=user_id, created_at__lt=cutoff, status__in=TERMINAL)
    while True:
        with transaction.atomic():
            batch = _locked_batch(old)
            if not batch:
                return
            rows = Message.objects.filter(pk__in=batch)
            _fold(user_id, rows, "messages.status", F("status"), report)
            _fold(
                user_id,
                rows.exclude(last_error=None),
                "messages.error",
                KeyTextTransform("category", "last_error"),
                report,
            )
            deleted = rows.delete()[1].get("relay.Message", 0)
        report.messages += deleted
        progress(f"  account {user_id}: {report.messages} message record(s) rotated")


def _rotate_requests(user_id: int, cutoff: datetime, report: Report, progress: Progress) -> None:
    old = ApiRequest.objects.filter(user_id=user_id, created_at__lt=cutoff)
    while True:
        with transaction.atomic():
            batch = _locked_batch(old)
            if not batch:
                return
            rows = ApiRequest.objects.filter(pk__in=batch)
            endpoint = Concat(F("method"), Value(" "), F("endpoint"), output_field=CharField())
            _fold(user_id, rows, "requests.endpoint", endpoint, report)
            _fold(user_id, rows, "requests.status", F("status"), report)
            _fold(user_id, rows.exclude(error_type=""), "requests.error", F("error_type"), report)
            report.requests += rows.delete()[0]
        progress(f"  account {user_id}: {report.requests} request record(s) rotated")


def _prune_anonymous_requests(now: datetime) -> int:
    """Requests no account made (failed authentication): kept as long as the default plan's logs."""
    from billing.plans import default_plan

    cutoff = now - timedelta(days=default_plan().retention_days)
    removed = 0
    while True:
        batch = list(
            ApiRequest.objects.filter(user__isnull=True, created_at__lt=cutoff).values_list("pk", flat=True)[
                : settings.RETENTION_BATCH
            ]
        )
        if not batch:
            return removed
        removed += ApiRequest.objects.filter(pk__in=batch).delete()[0]


def _prune_idempotency_keys(now: datetime) -> int:
    """Keys past the 24 hours they protect a send for: the customer's key and the fingerprint
    (a hash of the whole request, content included) go; the message's log stays its window."""
    from relay.actions import IDEMPOTENCY_WINDOW

    spent = IdempotencyKey.objects.filter(created_at__lt=now - IDEMPOTENCY_WINDOW)
    removed = 0
    while batch := list(spent.values_list("pk", flat=True)[: settings.RETENTION_BATCH]):
        removed += IdempotencyKey.objects.filter(pk__in=batch).delete()[0]
    return removed


def _clear_expired_sessions() -> None:
    """Console sessions past their expiry (never logged out of): what `clearsessions` does."""
    from importlib import import_module

    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()


def _truncate_ips(now: datetime, report: Report, progress: Progress) -> None:
    cutoff = now - timedelta(days=settings.REQUEST_IP_RETENTION_DAYS)
    pending = ApiRequest.objects.filter(created_at__lt=cutoff, ip_truncated=False)
    while True:
        rows = list(pending.only("pk", "ip")[: settings.RETENTION_BATCH])
        if not rows:
            return
        for row in rows:
            row.ip = truncate_ip(row.ip) if row.ip else None
            row.ip_truncated = True
        ApiRequest.objects.bulk_update(rows, ["ip", "ip_truncated"])
        report.ips_truncated += len(rows)
        progress(f"  {report.ips_truncated} IP address(es) truncated")


def rotate(now: datetime | None = None, progress: Progress | None = None) -> Report:
    """Fold and delete every account's raw logs older than its plan's retention window."""
    from accounts.models import User
    from auditlog.retention import prune_security_events

    now = now or timezone.now()
    progress = progress or (lambda line: None)
    report = Report()
    accounts = User.objects.select_related("plan").only("pk", "plan__retention_days").order_by("pk")
    for user in accounts.iterator(chunk_size=500):
        cutoff = now - timedelta(days=user.plan.retention_days)
        before = (report.messages, report.requests)
        _rotate_messages(user.pk, cutoff, report, progress)
        _rotate_requests(user.pk, cutoff, report, progress)
        if (report.messages, report.requests) != before:
            report.accounts += 1
    report.requests += _prune_anonymous_requests(now)
    report.idempotency_keys = _prune_idempotency_keys(now)
    _clear_expired_sessions()
    _truncate_ips(now, report, progress)
    report.security_events = prune_security_events(now)
    return report
