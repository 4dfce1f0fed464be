"""Public functions other apps use to ask about plans."""

from __future__ import annotations

from billing.models import Plan


def default_plan() -> Plan:
    return Plan.objects.default()
