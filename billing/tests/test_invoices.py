"""Invoices read as money, in the currency's own units: on the console, and in Finance's back
office and CSV export."""

import csv
import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from billing.models import Invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def fiona(settings, django_user_model):
    """Finance staff (auditlog.roles), in the back office without a second factor."""
    settings.ADMIN_REQUIRE_2FA = False  # force_login cannot pass a TOTP step.
    call_command("setup_roles", stdout=io.StringIO())
    user = django_user_model.objects.create_user("fiona@3drake.test", "a sturdy staff passphrase", is_staff=True)
    user.groups.add(Group.objects.get(name="Finance"))
    return user


def _export(client, invoices) -> list[dict[str, str]]:
    response = client.post(
        "/admin/billing/invoice/", {"action": "export_csv", "_selected_action": [i.pk for i in invoices]}
    )
    assert response["Content-Type"] == "text/csv"
    return list(csv.DictReader(io.StringIO(response.content.decode())))


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


def test_the_export_leaves_blank_cells_blank_and_defuses_formulas(client, fiona, alice):
    """The formula guard took an empty string for a formula start: every blank cell (a draft's
    number, its customer id, its invoice URL) came out as a lone ' (a review)."""
    draft = Invoice.objects.create(user=alice, stripe_invoice_id="in_1", amount_due=1900, status="draft")
    forged = Invoice.objects.create(user=alice, stripe_invoice_id="in_2", number="=HYPERLINK(1)", amount_due=1900)
    client.force_login(fiona)
    rows = {row["stripe_invoice_id"]: row for row in _export(client, [draft, forged])}
    assert (rows["in_1"]["number"], rows["in_1"]["stripe_customer_id"], rows["in_1"]["hosted_invoice_url"]) == (
        "",
        "",
        "",
    )
    assert rows["in_2"]["number"] == "'=HYPERLINK(1)"


def test_a_three_decimal_currency_reads_in_thousandths(client, alice, settings):
    """Stripe counts a dinar (BHD, JOD, KWD, OMR, TND) in thousandths: 19000 read as 190.00 KWD,
    ten times the invoice (a review)."""
    settings.STRIPE_SECRET_KEY = ""
    Invoice.objects.create(
        user=alice, stripe_invoice_id="in_1", number="INV-1", amount_due=1234560, currency="kwd",
        status="paid", created_at=timezone.now(),
    )  # fmt: skip
    client.force_login(alice)
    assert "1,234.560 KWD" in client.get("/billing/").content.decode()
    for currency in ["bhd", "jod", "kwd", "omr", "tnd"]:
        assert Invoice(amount_due=19000, currency=currency).amount_display == f"19.000 {currency.upper()}"
    assert Invoice(amount_due=5, currency="usd").amount_display == "0.05 USD"
    assert Invoice(amount_due=19000, currency="JPY").amount_display == "19,000 JPY"


def _invoices(user, amounts, *, status):
    """One invoice of `user` for each (currency, amount due, amount paid)."""
    return [
        Invoice.objects.create(
            user=user,
            stripe_invoice_id=f"in_{currency}",
            number=f"INV-{currency}",
            amount_due=due,
            amount_paid=paid,
            currency=currency,
            status=status,
            created_at=timezone.now(),
        )
        for currency, due, paid in amounts
    ]


def test_finance_reads_invoice_amounts_as_money_and_exports_both_counts(client, fiona, alice):
    """Finance's invoice list showed amount_due 1900 for 19.00 USD and for 1,900 JPY alike, and
    the export had only those counts of each currency's smallest unit (a review). The export keeps
    them exact, and adds the amounts in whole units."""
    invoices = _invoices(alice, [("usd", 1900, 1900), ("jpy", 1900, 1900), ("kwd", 19000, 19000)], status="paid")
    client.force_login(fiona)
    page = client.get("/admin/billing/invoice/").content.decode()
    for shown in ["19.00 USD", "1,900 JPY", "19.000 KWD"]:
        assert f'<td class="field-due">{shown}</td>' in page
        assert f'<td class="field-paid">{shown}</td>' in page
    rows = {row["currency"]: row for row in _export(client, invoices)}
    assert [(rows[c]["amount_due"], rows[c]["amount_due_decimal"]) for c in ["usd", "jpy", "kwd"]] == [
        ("1900", "19.00"),
        ("1900", "1900"),
        ("19000", "19.000"),
    ]
    assert rows["kwd"]["amount_paid_decimal"] == "19.000"


def test_finance_reads_an_invoices_amounts_as_money_on_its_page(client, fiona, alice):
    """The list read "19.00 USD", the invoice's own page 1900 for the same invoice, and 1900
    for 1,900 JPY alike. Its page reads as the list does, and stays read-only."""
    invoices = _invoices(alice, [("usd", 1900, 500), ("jpy", 1900, 0), ("kwd", 19000, 19000)], status="open")
    client.force_login(fiona)
    pages = {i.currency: client.get(f"/admin/billing/invoice/{i.pk}/change/").content.decode() for i in invoices}
    for currency, due, paid in [("usd", "19.00 USD", "5.00 USD"), ("jpy", "1,900 JPY", "0 JPY"),
                                ("kwd", "19.000 KWD", "19.000 KWD")]:  # fmt: skip
        page = pages[currency]
        assert f'<div class="readonly">{due}</div>' in page and f'<div class="readonly">{paid}</div>' in page
        assert '<div class="readonly">1900</div>' not in page and '<div class="readonly">19000</div>' not in page
        assert 'name="_save"' not in page  # A page to read, as before.
