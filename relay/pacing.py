"""Provider-aware pacing, shared by every worker process (state in the shared cache and database).

Providers suspend mailboxes that send too fast, so each sender has limits (senders.presets.LIMITS,
adjustable per sender): messages per minute, messages per rolling 24 hours, and concurrent SMTP
connections. A message over the pace is deferred (it waits, it does not fail).

- per minute: a fixed-window counter in the cache, incremented atomically;
- per 24 hours: counted from the message log (sent in the last 24 hours) at most once a minute,
  and in the shared cache in between, where every reservation adds to it;
- connections: numbered slots in the cache, each taken with an atomic `add` and held with a
  lease that is renewed while the connection lives, so a crashed worker's slot frees itself.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from drake.cache import add_to
from relay.models import Message, Status
from senders.models import Sender

SLOT_LEASE_SECONDS = 120


class PaceLimited(Exception):
    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


# How long a sender's 24-hour count, taken from the message log, is trusted before it is taken
# again. Meanwhile every reservation adds to it (sent or not), so it errs towards waiting.
DAY_COUNT_SECONDS = 60


def reserve(sender: Sender, now: datetime | None = None, count: int = 1) -> int:
    """Count up to `count` messages against the sender's pace. Returns how many may go now (at
    least one; the caller defers the rest), or raises PaceLimited if none may."""
    now = now or timezone.now()
    limits = sender.limits()
    minute = int(now.timestamp() // 60)
    minute_key = f"drake:pace:{sender.pk}:{minute}"
    used = _add_to(minute_key, count, timeout=120)
    allowed = max(0, min(count, limits.per_minute - (used - count)))
    if allowed:
        allowed = _reserve_day(sender, limits.per_day, now, allowed)
        if not allowed:
            _give_back(minute_key, count)
            oldest = _sent_in_day(sender, now).order_by("sent_at").values_list("sent_at", flat=True).first() or now
            raise PaceLimited(oldest + timedelta(hours=24), f"{limits.per_day} messages per 24 hours")
    if allowed < count:
        _give_back(minute_key, count - allowed)
    if not allowed:
        next_minute = datetime.fromtimestamp((minute + 1) * 60, tz=now.tzinfo)
        raise PaceLimited(next_minute, f"{limits.per_minute} messages per minute")
    return allowed


def _reserve_day(sender: Sender, per_day: int, now: datetime, count: int) -> int:
    """How many of `count` fit in the rolling 24 hours. The count comes from the message log
    (exact) at most every DAY_COUNT_SECONDS, and from the shared cache in between: counting a
    busy sender's log for every message cost more than sending it."""
    # A key per window, like the minute counters: a counter that ever lost its expiry (Redis'
    # INCR recreates an expired key without one) is simply never read again.
    window = int(now.timestamp() // DAY_COUNT_SECONDS)
    key = f"drake:pace-day:{sender.pk}:{window}"
    if cache.get(key) is None:
        cache.add(key, _sent_in_day(sender, now).count(), timeout=2 * DAY_COUNT_SECONDS)
    used = _add_to(key, count, timeout=2 * DAY_COUNT_SECONDS)
    allowed = max(0, min(count, per_day - (used - count)))
    if allowed < count:
        _give_back(key, count - allowed)
    return allowed


def _sent_in_day(sender: Sender, now: datetime) -> QuerySet[Message]:
    return Message.objects.filter(sender=sender, status=Status.SENT, sent_at__gte=now - timedelta(hours=24))


def _add_to(key: str, count: int, *, timeout: int) -> int:
    return add_to({key: count}, timeout=timeout)[key]


def _give_back(key: str, count: int) -> None:
    with contextlib.suppress(ValueError):  # Expired meanwhile: nothing to give back.
        cache.decr(key, count)


def acquire_connection_slot(sender: Sender) -> str | None:
    """Take one of the sender's connection slots; None if all are in use (across all workers)."""
    token = secrets.token_hex(8)
    for index in range(sender.limits().connections):
        key = f"drake:conn:{sender.pk}:{index}"
        if cache.add(key, token, timeout=SLOT_LEASE_SECONDS):
            return key
    return None


def renew_connection_slot(key: str) -> None:
    cache.touch(key, SLOT_LEASE_SECONDS)


def release_connection_slot(key: str) -> None:
    cache.delete(key)


def throttle_pause_until(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.PROVIDER_THROTTLE_PAUSE_SECONDS)
