"""The billing page's upgrade form with a bad plan: a 404, and a NUL in it a 400 (it was a 500)."""

import pytest
from django.test import Client

from billing.models import Plan


@pytest.fixture
def alice_on_billing(alice, settings):
    # Stripe configured, as in production; the plan lookup comes before any Stripe call.
    settings.STRIPE_SECRET_KEY = "sk_test_" + "1" * 24
    Plan.objects.create(name="Pro", slug="pro", monthly_quota=10_000, rate_per_minute=600, stripe_price_id="price_1")
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    return client


def test_an_unknown_plan_is_a_404(alice_on_billing):
    assert alice_on_billing.post("/billing/checkout/", {"plan": "nope"}).status_code == 404


def test_a_nul_in_the_posted_plan_is_a_client_error_not_a_500(alice_on_billing):
    # PostgreSQL cannot compare text holding NUL: the slug lookup raised DataError.
    response = alice_on_billing.post("/billing/checkout/", {"plan": "pro\x00"})
    assert response.status_code == 400, response.status_code
    assert response.content == b"The form holds a NUL character."
