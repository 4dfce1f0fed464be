"""Provider-aware pacing, shared by every worker process (state in the shared cache and database).

Providers suspend mailboxes that send too fast, so each sender has limits (senders.presets.LIMITS,
adjustable per sender): messages per minute, messages per rolling 24 hours, and concurrent SMTP
connections. A message over the pace is deferred (it waits, it does not fail).

- per minute: a fixed-window counter in the cache, incremented atomically;
- per 24 hours: counted exactly from the message log (sent in the last 24 hours);
- connections: numbered slots in the cache, each taken with an atomic `add` and held with a
  lease that is renewed while the connection lives, so a crashed worker's slot frees itself.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from relay.models import Message, Status
from senders.models import Sender

SLOT_LEASE_SECONDS = 120


class PaceLimited(Exception):
    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


def reserve(sender: Sender, now: datetime | None = None) -> None:
    """Count one message against the sender's pace; raise PaceLimited if it must wait."""
    now = now or timezone.now()
    limits = sender.limits()
    minute = int(now.timestamp() // 60)
    key = f"drake:pace:{sender.pk}:{minute}"
    cache.add(key, 0, timeout=120)
    try:
        used = cache.incr(key)
    except ValueError:  # Evicted between add and incr: start the window again.
        cache.set(key, 1, timeout=120)
        used = 1
    if used > limits.per_minute:
        next_minute = datetime.fromtimestamp((minute + 1) * 60, tz=now.tzinfo)
        raise PaceLimited(next_minute, f"{limits.per_minute} messages per minute")
    day_ago = now - timedelta(hours=24)
    sent = Message.objects.filter(sender=sender, status=Status.SENT, sent_at__gte=day_ago)
    if sent.count() >= limits.per_day:
        oldest = sent.order_by("sent_at").values_list("sent_at", flat=True).first() or now
        raise PaceLimited(oldest + timedelta(hours=24), f"{limits.per_day} messages per 24 hours")


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
