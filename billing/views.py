"""Console billing page: plan, usage against quota, upgrade (Checkout), manage (Portal), invoices."""

from __future__ import annotations

import logging

import stripe
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from billing import actions, stripe_api
from billing.models import Invoice, Plan, Subscription
from relay.usage import usage_summary

logger = logging.getLogger(__name__)
# Stripe down, or refusing: the customer's page says so and nothing changed.
STRIPE_UNAVAILABLE = (
    "Billing is unavailable right now (our payment provider did not answer). Try again in a few minutes."
)


@login_required
def billing_page(request: HttpRequest) -> HttpResponse:
    subscription = Subscription.objects.filter(user=request.user).first()
    returning = request.GET.get("checkout") == "done" and subscription and stripe_api.configured()
    if returning and not actions.has_running_subscription(request.user):
        # Back from paying: the plan is shown now, not once the webhook comes.
        try:
            if actions.adopt_running_subscription(subscription):
                request.user.refresh_from_db(fields=["plan"])
        except stripe.StripeError:
            logger.warning("Stripe could not be asked for a returning customer's subscription", exc_info=True)
    context = {
        "configured": stripe_api.configured(),
        "usage": usage_summary(request.user),
        "plans": Plan.objects.filter(is_public=True).exclude(stripe_price_id=""),
        "subscription": Subscription.objects.filter(user=request.user).first(),  # Again: adopting changes it.
        "subscribed": actions.has_running_subscription(request.user),
        "invoices": Invoice.objects.filter(user=request.user)[:24],
    }
    return render(request, "billing/page.html", context)


@login_required
@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    if not stripe_api.configured():
        messages.error(request, "Billing is not configured on this server.")
        return redirect("billing:page")
    plan = get_object_or_404(
        Plan.objects.filter(is_public=True).exclude(stripe_price_id=""), slug=request.POST.get("plan")
    )
    page = request.build_absolute_uri(reverse("billing:page"))
    try:
        url = actions.start_checkout(request.user, plan, success_url=f"{page}?checkout=done", cancel_url=page)
    except stripe.StripeError:
        logger.warning("Stripe refused or could not be reached for a checkout", exc_info=True)
        return _unavailable(request)
    return redirect(url)


def _unavailable(request: HttpRequest) -> HttpResponse:
    messages.error(request, STRIPE_UNAVAILABLE)
    return redirect("billing:page")


@login_required
@require_POST
def portal(request: HttpRequest) -> HttpResponse:
    if not stripe_api.configured():
        messages.error(request, "Billing is not configured on this server.")
        return redirect("billing:page")
    try:
        url = actions.portal_url(request.user, return_url=request.build_absolute_uri(reverse("billing:page")))
    except stripe.StripeError:
        logger.warning("Stripe refused or could not be reached for a portal session", exc_info=True)
        return _unavailable(request)
    return redirect(url)
