"""The console's buttons that reach a provider or the outbox are held to the account's rate.

Privacy policy 7 promises "Rate limiting ... to protect accounts and infrastructure"; the API
holds every key to the plan's rate and the account to API_ACCOUNT_RATE_PER_MINUTE (relay.
ratelimits). The console's "Verify" (an SMTP connect and login to the sender's provider) and
"Send a test email" counted against neither: a signed-in browser could log in to a provider as
often as it liked, a password guessed per try by updating the sender in between, where the API
stops at the plan's rate. Found by a privacy review helper.
"""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from auditlog.models import AuditEvent
from relay.models import Message


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


@pytest.fixture
def slow_plan(alice):
    alice.plan.rate_per_minute = 2
    alice.plan.save()
    return alice.plan


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def _one_minute():
    return time_machine.travel(timezone.now().replace(second=1) + timedelta(minutes=1), tick=False)


def test_console_verifies_stop_at_the_plans_rate(signed_in, smtp_sender, slow_plan):
    with _one_minute():
        pages = [signed_in.post(f"/senders/{smtp_sender.public_id}/verify/", follow=True) for _ in range(3)]
    assert AuditEvent.objects.filter(action="sender.verified").count() == 2
    assert "Verified" in pages[1].content.decode()
    assert "requests per minute" in pages[2].content.decode()


def test_console_test_emails_stop_at_the_plans_rate(signed_in, alice_sender, slow_plan):
    with _one_minute():
        pages = [signed_in.post(f"/messages/test/{alice_sender.public_id}/", follow=True) for _ in range(3)]
    assert Message.objects.count() == 2
    assert "Not sent: Over the" in pages[2].content.decode()


def test_the_account_ceiling_counts_the_api_and_the_console_together(signed_in, alice_api, alice_sender, settings):
    settings.API_ACCOUNT_RATE_PER_MINUTE = 3
    with _one_minute():
        assert [alice_api.get("/v1/account").status_code for _ in range(2)] == [200, 200]
        signed_in.post(f"/messages/test/{alice_sender.public_id}/")
        assert alice_api.get("/v1/account").status_code == 429
        page = signed_in.post(f"/messages/test/{alice_sender.public_id}/", follow=True).content.decode()
    assert Message.objects.count() == 1
    assert "account limit" in page
