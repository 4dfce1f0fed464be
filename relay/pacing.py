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

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from drake.cache import add_to, delete_if, touch_if
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
# Pacing keys outlive their window (a minute, or DAY_COUNT_SECONDS) by as long again.
KEY_SECONDS = 2 * max(60, DAY_COUNT_SECONDS)


def reserve(sender: Sender, now: datetime | None = None, count: int = 1) -> int:
    """Count up to `count` messages against the sender's pace. Returns how many may go now (at
    least one; the caller defers the rest), or raises PaceLimited if none may.

    One cache round trip in the steady state: the minute's counter and the day window's
    reservations are counted, and the day window's base (the log's count) read, together.
    """
    now = now or timezone.now()
    limits = sender.limits()
    minute = int(now.timestamp() // 60)
    minute_key, day_key, base_key = _keys(sender, now)
    counted = add_to({minute_key: count, day_key: count}, timeout=KEY_SECONDS, read=(base_key,))
    allowed = max(0, min(count, limits.per_minute - (counted[minute_key] - count)))
    minute_allowed = allowed
    if allowed:
        base = counted[base_key]
        if base is None:
            base = _day_base(sender, now, base_key)
        allowed = max(0, min(allowed, limits.per_day - (base + counted[day_key] - count)))
    if allowed < count:
        back = count - allowed
        add_to({minute_key: -back, day_key: -back}, timeout=KEY_SECONDS)
    if not minute_allowed:
        next_minute = datetime.fromtimestamp((minute + 1) * 60, tz=now.tzinfo)
        raise PaceLimited(next_minute, f"{limits.per_minute} messages per minute")
    if not allowed:
        oldest = _sent_in_day(sender, now).order_by("sent_at").values_list("sent_at", flat=True).first() or now
        raise PaceLimited(oldest + timedelta(hours=24), f"{limits.per_day} messages per 24 hours")
    return allowed


def _keys(sender: Sender, now: datetime) -> tuple[str, str, str]:
    """The sender's counters for `now`: its minute's, and its day window's reservations and base.

    The rolling 24 hours: what the message log counted when this window began (its base, at
    most every DAY_COUNT_SECONDS: counting a busy sender's log for every message cost more
    than sending it), plus every reservation made since (sent or not, so it errs towards
    waiting). Keys name their window, like the minute's: a counter that ever lost its expiry
    (Redis' INCR recreates an expired key without one) is simply never read again."""
    minute = int(now.timestamp() // 60)
    window = int(now.timestamp() // DAY_COUNT_SECONDS)
    return (
        f"drake:pace:{sender.pk}:{minute}",
        f"drake:pace-day-n:{sender.pk}:{window}",  # reservations only (was log + reservations)
        f"drake:pace-day-base:{sender.pk}:{window}",
    )


def unreserve(sender: Sender, now: datetime, count: int) -> None:
    """Give back `count` of the messages `reserve` counted at `now` that were not tried: they
    are counted again when they are."""
    if count <= 0:
        return
    minute_key, day_key, _ = _keys(sender, now)
    add_to({minute_key: -count, day_key: -count}, timeout=KEY_SECONDS)


def _day_base(sender: Sender, now: datetime, key: str) -> int:
    """The sender's sent messages of the last 24 hours, from the log, once per day window: the
    first worker to count stores it, and every worker uses the stored count."""
    counted = _sent_in_day(sender, now).count()
    if cache.add(key, counted, timeout=KEY_SECONDS):
        return counted
    stored = cache.get(key)
    return counted if stored is None else stored


def _sent_in_day(sender: Sender, now: datetime) -> QuerySet[Message]:
    return Message.objects.filter(sender=sender, status=Status.SENT, sent_at__gte=now - timedelta(hours=24))


@dataclass(frozen=True)
class Slot:
    """A connection slot held: its cache key, and the token its holder stored there."""

    key: str
    token: str


def acquire_connection_slot(sender: Sender, seconds: int | None = None) -> Slot | None:
    """Take one of the sender's connection slots, leased for `seconds` (SLOT_LEASE_SECONDS by
    default); None if all are in use (across all workers)."""
    token = secrets.token_hex(8)
    for index in range(sender.limits().connections):
        key = f"drake:conn:{sender.pk}:{index}"
        if cache.add(key, token, timeout=seconds or SLOT_LEASE_SECONDS):
            return Slot(key, token)
    return None


def renew_connection_slot(slot: Slot, seconds: int | None = None) -> bool:
    """Renew our own lease (for `seconds`, SLOT_LEASE_SECONDS by default); one that ran out is
    taken again if nobody took it since. False: another connection holds the slot now, and
    this one must close (it is over the cap)."""
    timeout = seconds or SLOT_LEASE_SECONDS
    return touch_if(slot.key, slot.token, timeout=timeout) or cache.add(slot.key, slot.token, timeout=timeout)


def release_connection_slot(slot: Slot) -> None:
    # Only our own: after our lease ran out the slot may be another worker's connection.
    delete_if(slot.key, slot.token)


def throttle_pause_until(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.PROVIDER_THROTTLE_PAUSE_SECONDS)
