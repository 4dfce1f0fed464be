"""Public functions other apps use to ask about plans."""

from __future__ import annotations

from typing import Any

from billing.models import Plan, Subscription
from drake import sql


def default_plan() -> Plan:
    return Plan.objects.default()


# What an accept reads of an account's plan and subscription: the quota it charges against,
# the API rate, the subject policy, and the billing period the charge counts in.
PLAN_FIELDS = ("monthly_quota", "rate_per_minute", "subject_policy")
SUBSCRIPTION_FIELDS = ("user_id", "current_period_start", "current_period_end")


def unchanged(user: Any, connection: Any) -> list[tuple[str, list[Any]]]:
    """Conditions (drake.sql) that the plan and subscription cached on `user` are still the
    account's as read: a statement that accepts from a snapshot (drake.snapshots) runs them."""
    conditions = [sql.unchanged(user.plan, PLAN_FIELDS, connection)]
    subscription = getattr(user, "subscription", None)
    if subscription is None:
        conditions.append(sql.absent(Subscription, "user_id", user.pk, connection))
    else:
        conditions.append(sql.unchanged(subscription, SUBSCRIPTION_FIELDS, connection))
    return conditions
