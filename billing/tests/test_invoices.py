"""The console's invoice list reads as money, in the currency's own units."""

import pytest
from django.utils import timezone

from billing.models import Invoice

pytestmark = pytest.mark.django_db


def test_invoice_amounts_read_as_money(client, alice, settings):
    """They showed as "1900 USD (cents)" (a console review)."""
    settings.STRIPE_SECRET_KEY = ""
    for number, amount, currency in [("INV-1", 1900, "usd"), ("INV-2", 123456, "eur"), ("INV-3", 1500, "jpy")]:
        Invoice.objects.create(
            user=alice, stripe_invoice_id=f"in_{number}", number=number, amount_due=amount, currency=currency,
            status="paid", created_at=timezone.now(),
        )  # fmt: skip
    client.force_login(alice)
    page = client.get("/billing/").content.decode()
    assert "19.00 USD" in page and "1,234.56 EUR" in page and "1,500 JPY" in page
    assert "(cents)" not in page
