"""The plan's monthly quota, enforced exactly under concurrency.

`charge` runs inside the transaction that accepts a message. In the steady state it is one
statement, `UPDATE ... SET accepted = accepted + 1 WHERE ... AND accepted < quota`: the row lock
that UPDATE takes makes parallel requests at the edge queue, so the count never overshoots, and
a rolled-back accept rolls its charge back. Idempotent replays return before charging.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction

from billing.models import UsageCounter
from drake.errors import QuotaExceeded, ServiceUnavailable

_TABLE = UsageCounter._meta.db_table


def charge_statement(
    user_id: int,
    period_start: datetime,
    quota: int,
    only_if: Sequence[tuple[str, list[Any]]] = (),
    connection: Any = connection,
) -> tuple[str, list[object]]:
    """The steady-state charge, `UPDATE ... RETURNING 1`: a row back means it counted; none
    means the general `charge` must decide (no counter for this period yet, or the quota is
    used up). Relay's one-statement accept on PostgreSQL runs it inside its own statement.
    `only_if`: further conditions (SQL, parameters) without which nothing is charged."""
    conditions = "".join(f" AND {condition}" for condition, _ in only_if)
    return (
        f"UPDATE {_TABLE} SET accepted = accepted + 1 "  # noqa: S608 (our names and conditions)
        f"WHERE user_id = %s AND period_start = %s AND accepted < %s{conditions} RETURNING 1",
        [
            user_id,
            connection.ops.adapt_datetimefield_value(period_start),
            quota,
            *(value for _, params in only_if for value in params),
        ],
    )


def charged(user: Any, period_start: datetime) -> int:
    """How many messages the quota has counted for the period starting at `period_start`:
    the number accepted, whatever retention has since removed from the message log."""
    counted = UsageCounter.objects.filter(user=user, period_start=period_start).values_list("accepted", flat=True)
    return counted.first() or 0


def _charge_existing(user_id: int, period_start: datetime, quota: int) -> bool:
    """The steady state, as SQL written once (every accept runs it): True if it counted."""
    with connection.cursor() as cursor:
        cursor.execute(*charge_statement(user_id, period_start, quota))
        return cursor.fetchone() is not None


def charge(user: Any, period_start: datetime, quota: int) -> None:
    """Count one accepted message against `quota`; raises QuotaExceeded. Run inside a transaction."""
    counters = UsageCounter.objects.filter(user=user, period_start=period_start)
    # A few rounds at most: the period's row can appear (another request creating it commits)
    # between any two of these statements; each round re-reads what is committed now.
    for _ in range(5):
        if _charge_existing(user.pk, period_start, quota):
            return
        if quota < 1 or counters.filter(accepted__gte=quota).exists():
            raise QuotaExceeded(
                f"The plan's quota of {quota} messages this period is used up. Upgrade on the billing page."
            )
        try:
            with transaction.atomic():
                UsageCounter.objects.create(user=user, period_start=period_start, accepted=1)
            return
        except IntegrityError:
            continue  # Another request created the period's row first: count against it.
    raise ServiceUnavailable("The usage counter is too contended right now; nothing was queued. Retry.")
