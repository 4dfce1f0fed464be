"""The whole customer journey in a real browser (Playwright driving Debian's Chromium).

Sign up, confirm, connect an SMTP sender (the test server), verify it, create a key and copy it,
send through the API, see it sent in the delivery log and on the dashboard, download the export,
delete the account. Every main page is screenshotted into artifacts/screenshots/ (not committed)
and no page may log a console error or a CSP violation.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from django.core import mail

from drake.testing.browser import shot, watch
from relay.tests.conftest import SMTP_PASSWORD, SMTP_USER

PASSWORD = "a long browser passphrase"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@pytest.fixture
def page(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
    yield watch(context.new_page())
    context.close()


def test_a_new_customer_goes_from_sign_up_to_deletion(page, live_server, worker, smtp_server, relay_settings):
    base = live_server.url
    email = "dana@example.org"

    page.goto(f"{base}/signup/")
    shot(page, "signup")
    page.fill("#id_email", email)
    page.fill("#id_name", "Dana")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    assert "Check your inbox" in page.content()
    link = re.search(r"https?://[^/]+(/activate/\S+/)", mail.outbox[-1].body).group(1)
    page.goto(f"{base}{link}")
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Confirm and sign in')")
    assert page.url.endswith("/dashboard/")
    shot(page, "dashboard-empty")

    # Connect the test SMTP server as a custom sender, and verify it.
    page.goto(f"{base}/senders/new/")
    page.check("input[name=provider][value=smtp]")
    page.fill("#id_from_email", email)
    page.fill("#id_username", SMTP_USER)
    page.fill("#id_password", SMTP_PASSWORD)
    page.fill("#id_host", "127.0.0.1")
    page.fill("#id_port", str(smtp_server.port))
    page.select_option("#id_security", "starttls")
    shot(page, "sender-new")
    page.click("button:has-text('Connect')")
    page.click("button:has-text('Verify connection')")
    assert "Verified: the provider accepted" in page.content()
    sender_id = re.search(r"snd_[0-9a-f]+", page.url).group(0)
    shot(page, "sender-detail")

    # Create an API key; it is shown once, with a working copy button.
    page.goto(f"{base}/keys/")
    page.fill("#id_name", "browser test")
    page.click("button:has-text('Create key')")
    key = page.input_value("#new-key")
    page.click("button.copy")
    page.wait_for_selector("button.copy:has-text('Copied')")
    shot(page, "api-keys")

    # Send through the API with it.
    response = page.request.post(
        f"{base}/v1/send",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        data=json.dumps(
            {"sender": sender_id, "to": "friend@example.com", "subject": "Hi from the browser test", "text": "Hello"}
        ),
    )
    assert response.status == 202
    message_id = response.json()["id"]

    # It shows as sent in the delivery log once the worker delivered it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page.goto(f"{base}/messages/")
        if page.locator(f"tr:has-text('{message_id}') .badge.good").count():
            break
        time.sleep(0.5)
    assert page.locator(f"tr:has-text('{message_id}') .badge.good").count() == 1
    assert len(smtp_server.messages) == 1
    shot(page, "delivery-log")
    page.click(f"a:has-text('{message_id}')")
    shot(page, "message-detail")

    page.goto(f"{base}/dashboard/")
    assert page.locator(".stats .stat.good").first.inner_text() == "1"
    shot(page, "dashboard")
    for name, path in [
        ("api-requests", "/messages/api-requests/"),
        ("billing", "/billing/"),
        ("account", "/account/"),
        ("docs", "/docs/"),
        ("privacy", "/privacy/"),
    ]:
        page.goto(f"{base}{path}")
        shot(page, name)

    # Download the data export (password asked again).
    page.goto(f"{base}/account/export/")
    page.fill("#id_password", PASSWORD)
    with page.expect_download() as download:
        page.click("button:has-text('Download')")
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported["account"]["email"] == email
    assert [m["public_id"] for m in exported["messages"]] == [message_id]

    # And leave.
    page.goto(f"{base}/account/delete/")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_confirm", "delete my account")
    page.click("button:has-text('Delete my account')")
    assert "Your account is deleted" in page.content()
    shot(page, "deleted")

    assert page.problems == [], page.problems
