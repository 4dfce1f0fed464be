"""Billing writes: checkout, portal, mirroring Stripe's state, invoices, grace periods."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from auditlog.events import record
from billing import stripe_api
from billing.models import Invoice, Plan, Subscription

logger = logging.getLogger(__name__)

ACTIVE = {"active", "trialing"}
# A subscription in one of these pays for no plan: it ended, or Stripe keeps it billing nothing
# (unpaid once the retries ran out; paused, as when a trial ends without a payment method, until
# it is resumed). The account is on the free plan, and the subscription does not stand in the
# way of a new one.
NOT_PAYING = {"canceled", "unpaid", "incomplete_expired", "paused"}
# What has_running_subscription counts as paying, in the statuses Stripe answers with.
PAYING = {"active", "trialing", "past_due"}
# Of NOT_PAYING, the ones Stripe will not cancel again.
ENDED = {"canceled", "incomplete_expired"}


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def customer_for(user: Any) -> Subscription:
    """The account's billing row, creating its Stripe customer on first use."""
    subscription = Subscription.objects.filter(user=user).first()
    if subscription is not None:
        return subscription
    with transaction.atomic():
        # Two requests at once (a double click on a plan) must not both create a customer: the
        # second waits on the account's row, then finds the billing row the first one made.
        get_user_model().objects.select_for_update().filter(pk=user.pk).exists()
        subscription = Subscription.objects.filter(user=user).first()
        if subscription is None:
            customer = stripe_api.create_customer(user.email, user.pk)
            subscription = Subscription.objects.create(user=user, stripe_customer_id=customer)
    return subscription


def sync_customer_email(account_id: int) -> None:
    """After an email change commits: the account's customer at Stripe, if it has one, gets the
    account's email as it is now (Stripe mails receipts and invoices to it, and was created with
    the old one). Best effort: the change stands whatever Stripe says, and a customer left with
    the old address is logged, by its id alone, for staff to correct in Stripe's dashboard."""
    row = (
        Subscription.objects.filter(user_id=account_id)
        .exclude(stripe_customer_id="")
        .values_list("stripe_customer_id", "user__email")
        .first()
    )
    if row is None:
        return
    customer_id, email = row
    if not stripe_api.configured():
        logger.warning("Stripe customer %s keeps an old email: Stripe is not configured here.", customer_id)
        return
    try:
        stripe_api.update_customer_email(customer_id, email)
    except Exception:
        logger.warning("Stripe customer %s could not be given the account's new email.", customer_id, exc_info=True)


def end_subscription(subscription_id: str) -> None:
    """Cancel a subscription at Stripe (an account's erasure); raises what Stripe said. One that
    Stripe has ended already is done: it refuses to cancel it again ("No such subscription"),
    which kept an account whose owner had just cancelled in the Portal from being deleted
    while that event was on its way, and for good had it been lost."""
    try:
        stripe_api.cancel_subscription(subscription_id)
    except stripe.InvalidRequestError:
        if not _ended_at_stripe(subscription_id):
            raise


def _ended_at_stripe(subscription_id: str) -> bool:
    try:
        return stripe_api.retrieve_subscription(subscription_id).status in ENDED
    except stripe.StripeError:
        return False


def has_running_subscription(user: Any) -> bool:
    """Whether the account pays for a subscription now: a plan change is then the Portal's (a
    new Checkout would start a second subscription, and the customer would pay for both)."""
    return (
        Subscription.objects.filter(user=user)
        .exclude(stripe_subscription_id="")
        .exclude(status__in=[*NOT_PAYING, "incomplete", ""])
        .exists()
    )


def start_checkout(user: Any, plan: Plan, *, success_url: str, cancel_url: str) -> str:
    """Where the customer goes to pay for `plan`: a Checkout session, or, for an account that
    pays for a subscription already, the Portal, where that subscription's plan is changed."""
    if has_running_subscription(user):
        return portal_url(user, return_url=cancel_url)
    subscription = customer_for(user)
    # Stripe's word, not only the mirror's: a second Checkout made a second subscription, paid
    # for on top of the first.
    if adopt_running_subscription(subscription):
        return portal_url(user, return_url=cancel_url)
    url = stripe_api.create_checkout_session(
        customer=subscription.stripe_customer_id,
        price=plan.stripe_price_id,
        account_id=user.pk,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    record("billing.checkout_started", actor=user, account=user, detail={"plan": plan.slug})  # once it has
    return url


def adopt_running_subscription(subscription: Subscription) -> bool:
    """Whether the customer pays for a subscription at Stripe, which is then mirrored at once.

    The mirror learns of a subscription just paid for only when its webhook arrives: seconds
    after the customer is back from Checkout, or never while the webhook endpoint is broken.
    Raises stripe.StripeError when Stripe does not answer.
    """
    customer = subscription.stripe_customer_id
    running = [sid for sid, status in stripe_api.subscriptions_of(customer) if status in PAYING]
    if running:
        refresh_subscription(running[0], customer)
    return bool(running)


def portal_url(user: Any, *, return_url: str) -> str:
    return stripe_api.create_portal_session(customer=customer_for(user).stripe_customer_id, return_url=return_url)


def _set_plan(user: Any, plan: Plan, reason: str) -> None:
    if user is None or user.plan_id == plan.pk:
        return
    old = user.plan.slug
    type(user).objects.filter(pk=user.pk).update(plan=plan)
    user.plan = plan
    record(
        "plan.changed",
        account=user,
        target=user,
        actor_label="stripe",
        detail={"from": old, "to": plan.slug, "reason": reason},
    )


def _older_than_the_mirrored_one(subscription: Subscription, stripe_subscription: Any) -> bool:
    """Whether `stripe_subscription` is another subscription than the running one mirrored
    here, and an older one (or one that pays for nothing): then it does not replace the mirror."""
    if subscription.stripe_subscription_id in ("", stripe_subscription.id) or subscription.status in NOT_PAYING:
        return False
    if stripe_subscription.status in NOT_PAYING:
        return True
    mirrored = stripe_api.retrieve_subscription(subscription.stripe_subscription_id)
    if mirrored.status in NOT_PAYING:
        return False
    return int(getattr(mirrored, "created", 0) or 0) > int(getattr(stripe_subscription, "created", 0) or 0)


def refresh_subscription(subscription_id: str, customer: str = "") -> Subscription | None:
    """Fetch a subscription from Stripe and mirror it (sync_subscription), one sync of it at a
    time: its billing row (the one mirroring it, or the customer's) is locked before the fetch,
    so of two events handled at once (an update and a deletion), the one that fetched last
    saves last. Unlocked, the slower one saved its older answer over the newer: canceled at
    Stripe, active here. Callers in a transaction hold the lock until they commit."""
    with transaction.atomic():
        mirrors = Q(stripe_subscription_id=subscription_id)
        if customer:
            mirrors |= Q(stripe_customer_id=customer)
        list(Subscription.objects.select_for_update().filter(mirrors).values_list("pk", flat=True))
        return sync_subscription(stripe_api.retrieve_subscription(subscription_id))


def sync_subscription(stripe_subscription: Any) -> Subscription | None:
    """Mirror a subscription as Stripe has it *now* (callers fetch it fresh: events may arrive
    out of order; refresh_subscription fetches it under the row's lock), and give the account
    the plan it pays for."""
    with transaction.atomic():
        return _sync_subscription(stripe_subscription)


def _sync_subscription(stripe_subscription: Any) -> Subscription | None:
    subscription = (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("user", "user__plan")
        .filter(stripe_customer_id=stripe_subscription.customer)
        .first()
    )
    if subscription is None:
        return None
    if _older_than_the_mirrored_one(subscription, stripe_subscription):
        # News of an older subscription of this customer (its end, a renewal, a cancellation
        # scheduled): the one mirrored here runs on and stays the account's.
        return subscription
    plan = Plan.objects.filter(stripe_price_id=stripe_api.price_of(stripe_subscription)).first()
    status = stripe_subscription.status
    subscription.stripe_subscription_id = stripe_subscription.id
    subscription.status = status
    subscription.plan = plan
    start, end = stripe_api.period_of(stripe_subscription)
    subscription.current_period_start, subscription.current_period_end = _ts(start), _ts(end)
    subscription.cancel_at_period_end = bool(getattr(stripe_subscription, "cancel_at_period_end", False))
    if status in ACTIVE or status in NOT_PAYING:
        # Paid again, or billed no more: no grace period runs. Left open after the end, the
        # hourly grace task put the account back on the free plan whatever staff gave it since.
        subscription.past_due_since = None
    elif status == "past_due" and subscription.past_due_since is None:
        subscription.past_due_since = timezone.now()
    subscription.save()
    user = subscription.user
    if status in ACTIVE and plan is not None:
        _set_plan(user, plan, f"subscription {status}")
    elif status in NOT_PAYING:
        _set_plan(user, Plan.objects.default(), f"subscription {status}")
    elif status == "past_due":
        enforce_grace(subscription)
    return subscription


def customer_deleted(customer_id: str) -> None:
    """The customer is gone at Stripe (staff deleted it in its dashboard; an account's own goes
    with the account), its subscriptions cancelled first: nothing is paid for any more, so the
    account is on the free plan, and its billing row goes too. Kept, it named the deleted
    customer in every later Checkout and Portal, which Stripe refused for good; without it the
    next Checkout makes a new customer. Invoices keep the old customer's id."""
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("user", "user__plan")
            .filter(stripe_customer_id=customer_id)
            .first()
        )
        if subscription is None:
            return
        _set_plan(subscription.user, Plan.objects.default(), "customer deleted at Stripe")
        subscription.delete()


def enforce_grace(subscription: Subscription, now: datetime | None = None) -> bool:
    """After BILLING_GRACE_DAYS of failed payment, the account falls back to the free plan."""
    now = now or timezone.now()
    if subscription.past_due_since is None or subscription.user is None:
        return False
    if now - subscription.past_due_since < timedelta(days=settings.BILLING_GRACE_DAYS):
        return False
    _set_plan(subscription.user, Plan.objects.default(), "payment failed past the grace period")
    return True


def enforce_all_grace_periods() -> int:
    pending = list(Subscription.objects.filter(past_due_since__isnull=False).values_list("pk", flat=True))
    return sum(_enforce_grace_of(pk) for pk in pending)


def _enforce_grace_of(pk: int) -> bool:
    # Locked and read again, as a webhook locks it (refresh_subscription): from one reading of
    # them all, a payment handled meanwhile was undone and the account put on the free plan.
    with transaction.atomic():
        subscription = (
            Subscription.objects.select_for_update(of=("self",))
            .select_related("user", "user__plan")
            .filter(pk=pk)
            .first()
        )
        return subscription is not None and enforce_grace(subscription)


def hold_invoice(invoice_id: str, customer: str) -> None:
    """Lock the customer's billing row and the invoice's record until the caller's transaction
    ends; callers do it before they fetch the invoice, so of two events of it handled at once
    (its payment failed, then a retry paid it), the one that fetched last saves last.
    Unlocked, the failure's older answer was saved over the newer: the invoice open in the
    records though paid, and a grace period started on a subscription paid for. The billing
    row first, as refresh_subscription, which the paid event calls next, locks it."""
    if customer:
        list(Subscription.objects.select_for_update().filter(stripe_customer_id=customer).values_list("pk", flat=True))
    list(Invoice.objects.select_for_update().filter(stripe_invoice_id=invoice_id).values_list("pk", flat=True))


def sync_invoice(stripe_invoice: Any) -> Invoice | None:
    """Record an invoice of one of our customers, or bring a recorded one up to date. One of a
    customer we never had (no billing row, nothing billed before) is another product's on the
    same Stripe account: not recorded (it was, detached, in finance's export as if we had
    billed it). An erased account's invoices were recorded while it was here, and are still
    kept up to date."""
    subscription = (
        Subscription.objects.select_related("user").filter(stripe_customer_id=stripe_invoice.customer).first()
    )
    fields: dict[str, Any] = {
        "stripe_customer_id": stripe_invoice.customer or "",
        "number": getattr(stripe_invoice, "number", None) or "",
        "amount_due": getattr(stripe_invoice, "amount_due", 0) or 0,
        "amount_paid": getattr(stripe_invoice, "amount_paid", 0) or 0,
        "currency": getattr(stripe_invoice, "currency", "usd") or "usd",
        "status": getattr(stripe_invoice, "status", "") or "",
        "period_start": _ts(getattr(stripe_invoice, "period_start", None)),
        "period_end": _ts(getattr(stripe_invoice, "period_end", None)),
        "hosted_invoice_url": getattr(stripe_invoice, "hosted_invoice_url", None) or "",
        "created_at": _ts(getattr(stripe_invoice, "created", None)),
    }
    if subscription is not None:
        fields["user"] = subscription.user
    elif not Invoice.objects.filter(stripe_invoice_id=stripe_invoice.id).exists():
        # New, and its customer has no billing row: one we billed before (deleted at Stripe, an
        # event arriving late) bills that invoice's account; else it is not ours.
        earlier = Invoice.objects.filter(stripe_customer_id=stripe_invoice.customer or None).first()
        if earlier is None:
            return None
        fields["user_id"] = earlier.user_id
    # Otherwise a recorded invoice keeps the account it has: set to None, one left the page and
    # export of an account still here once its customer was deleted at Stripe.
    invoice, _ = Invoice.objects.update_or_create(stripe_invoice_id=stripe_invoice.id, defaults=fields)
    return invoice


def payment_failed(stripe_invoice: Any) -> None:
    """An invoice's payment failed (callers fetch it fresh): if it bills the subscription the
    account's plan rests on, its grace period starts, unless the invoice has been paid or
    voided since (the event arrived late). Another invoice of the customer (a one-off charge)
    is recorded and changes nothing: it started the grace period of a subscription still paid
    for, and a week later the account was on the free plan."""
    sync_invoice(stripe_invoice)
    if getattr(stripe_invoice, "status", None) in ("paid", "void"):
        return
    billed = stripe_api.subscription_of(stripe_invoice)
    if not billed:
        return
    with transaction.atomic():
        Subscription.objects.filter(
            stripe_customer_id=stripe_invoice.customer, stripe_subscription_id=billed, past_due_since__isnull=True
        ).exclude(status__in=NOT_PAYING).update(past_due_since=timezone.now())  # Ended: no grace to start.
