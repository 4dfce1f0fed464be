"""The plan's monthly quota, enforced exactly under concurrency.

`charge` runs inside the transaction that accepts a message. In the steady state it is one
statement, `UPDATE ... SET accepted = accepted + 1 WHERE ... AND accepted < quota`: the row lock
that UPDATE takes makes parallel requests at the edge queue, so the count never overshoots, and
a rolled-back accept rolls its charge back. Idempotent replays return before charging.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from billing.models import UsageCounter
from drake.errors import QuotaExceeded


def charge(user: Any, period_start: datetime, quota: int) -> None:
    """Count one accepted message against `quota`; raises QuotaExceeded. Run inside a transaction."""
    counters = UsageCounter.objects.filter(user=user, period_start=period_start)
    for _ in range(2):
        if counters.filter(accepted__lt=quota).update(accepted=F("accepted") + 1):
            return
        if counters.exists():
            break
        if quota < 1:
            break
        try:
            with transaction.atomic():
                UsageCounter.objects.create(user=user, period_start=period_start, accepted=1)
            return
        except IntegrityError:
            continue  # Another request created the period's row first: count against it.
    raise QuotaExceeded(f"The plan's quota of {quota} messages this period is used up. Upgrade on the billing page.")
