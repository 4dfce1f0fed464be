"""Customers' own security events have a window of their own; staff access trails are kept."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from auditlog.models import AuditEvent

# Events a customer's own activity produces (not staff access, not account-level decisions):
# each carries the IP it came from, and an email change the new address.
SECURITY_EVENT_PREFIXES = (
    "login.",
    "api_key.",
    "sender.",
    "2fa.",
    "password.",
    "billing.checkout",
    "email.",
    "export.",
    "account.created",
    "account.activated",
)


def prune_security_events(now: datetime) -> int:
    cutoff = now - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS)
    prefixes = Q()
    for prefix in SECURITY_EVENT_PREFIXES:
        prefixes |= Q(action__startswith=prefix)
    # Not what staff did to the account (a revocation, a pause, with its reason): their trail.
    events = AuditEvent.objects.filter(prefixes, created_at__lt=cutoff, actor_is_staff=False)
    return events.erase()
