"""POST /billing/stripe/webhook: verified first, each event applied once, state fetched fresh."""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import actions, stripe_api
from billing.models import StripeEvent, Subscription

logger = logging.getLogger(__name__)


def _customer_of(obj: Any) -> str:
    """The id of the customer an event's object names, or "" (its id, or its object if expanded)."""
    customer = getattr(obj, "customer", None) or ""
    return getattr(customer, "id", customer)


def _checkout_completed(session: Any) -> None:
    account_id = getattr(session, "client_reference_id", None)
    if account_id and not (account_id.isascii() and account_id.isdigit()):
        # Not a session we started (ours name the account by its id): a Payment Link or another
        # app on the same Stripe account. Acknowledged and ignored: raising made it a 500 that
        # Stripe retried for days. Its reference is theirs and may be personal: not logged.
        logger.info("Checkout session %s names no account of ours: ignored", session.id)
        return
    if account_id and not _for_the_accounts_customer(int(account_id), session):
        return
    if getattr(session, "subscription", None):
        actions.refresh_subscription(session.subscription, _customer_of(session))


def _for_the_accounts_customer(account_id: int, session: Any) -> bool:
    """Whether the session is for the customer of the account it names, as ours always are
    (start_checkout passes customer_for's). False, and nothing changed, otherwise: a Payment
    Link (or another app on the same Stripe account) takes its client_reference_id from whoever
    opens it, and linking its customer moved the account named onto someone else's customer,
    mirrored their subscription, and ignored the account's own from then on; a customer another
    billing row holds broke the unique customer id (a 500 that Stripe retried for days). The
    caller then applies the session's subscription to neither: refresh_subscription mirrors by
    customer. Staff sort it out from the log, which names ids only."""
    customer = _customer_of(session)
    if not customer:
        return True  # Nothing to link: the account keeps its customer id (set to None, it was a 500).
    holder = Subscription.objects.filter(stripe_customer_id=customer).values_list("pk", "user_id").first()
    if holder is not None and holder[1] == account_id:
        return True
    subscription = getattr(session, "subscription", None)
    subscription = getattr(subscription, "id", subscription) or "-"  # An id, or the object when expanded.
    if holder is None:
        logger.warning(
            "Checkout session %s names account %s, but its customer %s is not that account's (nor any other's):"
            " subscription %s not applied",
            session.id,
            account_id,
            customer,
            subscription,
        )
    else:
        logger.warning(
            "Checkout session %s names account %s, but its customer %s is linked to billing row %s (account %s):"
            " not linked, subscription %s not applied",
            session.id,
            account_id,
            customer,
            *holder,
            subscription,
        )
    return False


def _subscription_changed(subscription: Any) -> None:
    # Events can arrive out of order: apply what Stripe says now, not what the event said then.
    actions.refresh_subscription(subscription.id, _customer_of(subscription))


def _customer_deleted(customer: Any) -> None:
    actions.customer_deleted(customer.id)


def _invoice_paid(invoice: Any) -> None:
    actions.hold_invoice(invoice.id, _customer_of(invoice))
    actions.sync_invoice(stripe_api.retrieve_invoice(invoice.id))
    subscription = stripe_api.subscription_of(invoice)
    if subscription:
        actions.refresh_subscription(subscription, _customer_of(invoice))


def _invoice_closed(invoice: Any) -> None:
    # Voided (an expired incomplete subscription's, or by staff) or written off: no money is
    # owed any more, and finance's records and the customer's page must not say "open".
    actions.hold_invoice(invoice.id, _customer_of(invoice))
    actions.sync_invoice(stripe_api.retrieve_invoice(invoice.id))


def _invoice_failed(invoice: Any) -> None:
    actions.hold_invoice(invoice.id, _customer_of(invoice))
    actions.payment_failed(stripe_api.retrieve_invoice(invoice.id))


HANDLERS = {
    "checkout.session.completed": _checkout_completed,
    "customer.deleted": _customer_deleted,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "customer.subscription.paused": _subscription_changed,
    "customer.subscription.resumed": _subscription_changed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "invoice.voided": _invoice_closed,
    "invoice.marked_uncollectible": _invoice_closed,
}


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    if not stripe_api.configured() or not request.headers.get("Stripe-Signature"):
        return JsonResponse({"error": "not accepted"}, status=400)
    if not stripe_api.webhooks_configured():
        # Stripe retries for days and only its dashboard shows the 400s: say it where operators look.
        logger.error("A Stripe event was refused: STRIPE_WEBHOOK_SECRET is not set (check: drake.W007).")
        return JsonResponse({"error": "not accepted"}, status=400)
    try:
        event = stripe_api.construct_event(request.body, request.headers["Stripe-Signature"])
    except (ValueError, stripe.SignatureVerificationError):
        return JsonResponse({"error": "bad signature or payload"}, status=400)
    handler = HANDLERS.get(event.type)
    if handler is None:
        return JsonResponse({"received": True, "handled": False})
    with transaction.atomic():
        try:
            with transaction.atomic():
                StripeEvent.objects.create(event_id=event.id, type=event.type)
        except IntegrityError:
            return JsonResponse({"received": True, "duplicate": True})
        # Same transaction as the event id: if the handler fails, Stripe retries and nothing half-applies.
        handler(event.data.object)
    return JsonResponse({"received": True, "handled": True})
