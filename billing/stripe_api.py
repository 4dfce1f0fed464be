"""Everything that talks to Stripe, in one small module (tests point it at a local Stripe)."""

from __future__ import annotations

from typing import Any

import stripe
from django.conf import settings


class NotConfigured(Exception):
    """STRIPE_SECRET_KEY is unset: billing shows as not configured and the free plan applies."""


def _secret_key() -> str:
    # Without the newline an env file or a mounted secret leaves: with it, every call failed,
    # and the HTTP library's error quoted the Authorization header, key included.
    return settings.STRIPE_SECRET_KEY.strip()


def configured() -> bool:
    return bool(_secret_key())


def webhooks_configured() -> bool:
    return bool(settings.STRIPE_WEBHOOK_SECRET.strip())


def client() -> stripe.StripeClient:
    if not configured():
        raise NotConfigured()
    kwargs: dict[str, Any] = {
        # The library's defaults (80 s a try, two retries) held a checkout about four minutes when
        # Stripe hung: past gunicorn's 30 s kill, with customer_for's row lock held meanwhile.
        # STRIPE_TIMEOUT_SECONDS bounds each network wait and one retry (idempotent: the library
        # sends a POST's retry with an Idempotency-Key) covers a blip, so a Stripe that does not
        # answer is "Billing is unavailable" after about twice that.
        "max_network_retries": 1,
        "http_client": stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
    }
    if settings.STRIPE_API_BASE:
        kwargs["base_addresses"] = {"api": settings.STRIPE_API_BASE}
    return stripe.StripeClient(_secret_key(), **kwargs)


def create_customer(email: str, account_id: int) -> str:
    customer = client().v1.customers.create(params={"email": email, "metadata": {"account_id": str(account_id)}})
    return customer.id


def create_checkout_session(*, customer: str, price: str, account_id: int, success_url: str, cancel_url: str) -> str:
    session = client().v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer,
            "client_reference_id": str(account_id),
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
    )
    return session.url


def create_portal_session(*, customer: str, return_url: str) -> str:
    return client().v1.billing_portal.sessions.create(params={"customer": customer, "return_url": return_url}).url


def subscriptions_of(customer: str) -> list[tuple[str, str]]:
    """(id, status) of the customer's subscriptions at Stripe, but canceled ones."""
    found = client().v1.subscriptions.list(params={"customer": customer, "limit": 10})
    return [(subscription.id, subscription.status) for subscription in found.data]


def retrieve_subscription(subscription_id: str) -> Any:
    return client().v1.subscriptions.retrieve(subscription_id)


def retrieve_invoice(invoice_id: str) -> Any:
    return client().v1.invoices.retrieve(invoice_id)


def cancel_subscription(subscription_id: str) -> None:
    client().v1.subscriptions.cancel(subscription_id)


def update_customer_email(customer_id: str, email: str) -> None:
    """Give the customer at Stripe the account's email (receipts and invoices go to it)."""
    client().v1.customers.update(customer_id, params={"email": email})


def delete_customer(customer_id: str) -> None:
    """Delete the customer at Stripe (its email and metadata); Stripe keeps its invoices."""
    client().v1.customers.delete(customer_id)


def construct_event(payload: bytes, signature: str) -> Any:
    """Verify a webhook's signature (and its age: at most 5 minutes). Raises ValueError or
    stripe.SignatureVerificationError."""
    return stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET.strip())


def price_of(subscription: Any) -> str:
    """The price (or, in older API shapes, the plan) id of a subscription's first item."""
    item = subscription["items"]["data"][0]
    price = getattr(item, "price", None)
    if price:
        return price.id
    return item.plan.id


# Since API 2025-03-31 ("basil"; stripe 16 pins 2026-10-28.endive) a subscription's period is
# on each of its items and an invoice names its subscription under parent.subscription_details.
# The helpers read that shape first, then the older one (localstripe's, and Stripe's before).


def period_of(subscription: Any) -> tuple[int | None, int | None]:
    """The start and end (Unix seconds) of a subscription's current period, as its first item
    has them, else as the subscription has them (older API shapes)."""
    item = subscription["items"]["data"][0]
    start = getattr(item, "current_period_start", None) or getattr(subscription, "current_period_start", None)
    end = getattr(item, "current_period_end", None) or getattr(subscription, "current_period_end", None)
    return start, end


def subscription_of(invoice: Any) -> str | None:
    """The id of the subscription an invoice bills, if it bills one."""
    details = getattr(getattr(invoice, "parent", None), "subscription_details", None)
    subscription = getattr(details, "subscription", None) or getattr(invoice, "subscription", None)
    return getattr(subscription, "id", subscription) or None  # An id, or the object when expanded.
