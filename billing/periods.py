"""The current billing period of an account."""

from __future__ import annotations

import calendar
from datetime import datetime
from typing import Any

from django.utils import timezone


def current_period(user: Any = None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The subscription's current period while it covers `now`, else the calendar month (UTC)."""
    now = now or timezone.now()
    subscription = getattr(user, "subscription", None) if user is not None else None
    if (
        subscription is not None
        and subscription.current_period_start
        and subscription.current_period_end
        and subscription.current_period_start <= now < subscription.current_period_end
    ):
        return subscription.current_period_start, subscription.current_period_end
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last = calendar.monthrange(now.year, now.month)[1]
    end = now.replace(day=last, hour=23, minute=59, second=59, microsecond=999999)
    return start, end
