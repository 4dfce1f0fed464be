"""A confirmed email change reaches the account's customer at Stripe.

Privacy policy 10 (correct inaccurate or incomplete information) and 8 (subprocessors process
data consistent with this policy). The Stripe customer is created with the account's email
(billing.actions.customer_for) and was never told of a change: after the customer confirmed a
new address, Stripe still held, and mailed receipts and invoices to, the one they corrected
(found by a privacy review). The update is sent after the change commits, as the deletion's
Stripe call is: the tests run the on-commit callbacks.
"""

from __future__ import annotations

import re

import pytest
from django.core import mail

from billing import actions
from billing.models import Subscription
from billing.tests.test_stripe import local_stripe, stripe_client, stripe_settings  # noqa: F401  (fixtures)
from conftest import PASSWORD

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def _change_email(client, alice, django_capture_on_commit_callbacks) -> None:
    client.force_login(alice)
    client.post("/account/", {"new_email": "alice@new.example", "password": PASSWORD})
    link = re.search(r"http://testserver(/account/email/\S+/)", mail.outbox[-1].body).group(1)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(link).status_code == 302
    alice.refresh_from_db()
    assert alice.email == "alice@new.example"


def test_a_confirmed_email_change_reaches_the_stripe_customer(
    client,
    alice,
    stripe_client,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    customer = actions.customer_for(alice).stripe_customer_id
    assert stripe_client.v1.customers.retrieve(customer).email == "alice@example.org"

    _change_email(client, alice, django_capture_on_commit_callbacks)

    assert stripe_client.v1.customers.retrieve(customer).email == "alice@new.example"


def test_a_customer_stripe_cannot_update_leaves_the_change_made_and_staff_told(
    client,
    alice,
    stripe_settings,  # noqa: F811
    caplog,
    django_capture_on_commit_callbacks,
):
    Subscription.objects.create(user=alice, stripe_customer_id="cus_unknown_here")

    _change_email(client, alice, django_capture_on_commit_callbacks)

    assert "Stripe customer cus_unknown_here could not be given the account's new email." in caplog.text
    assert "alice@example.org" not in caplog.text and "alice@new.example" not in caplog.text


def test_an_account_without_a_stripe_customer_changes_email_without_calling_stripe(
    client, alice, settings, django_capture_on_commit_callbacks
):
    settings.STRIPE_SECRET_KEY = ""  # A call would raise NotConfigured.

    _change_email(client, alice, django_capture_on_commit_callbacks)
