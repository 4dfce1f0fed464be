"""The console in a real browser at a phone's width and with what SMTP servers say.

No column a person needs disappears on a phone, a long server reply never pushes the page
sideways (or runs as markup), and a verification, which may wait on a slow server for seconds,
shows that it is working and cannot be sent twice. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from billing.models import Invoice
from conftest import PASSWORD
from drake.testing.browser import shot, sign_in, watch
from drake.testing.smtp import SilentServer
from relay.models import DeliveryAttempt, Message
from senders import actions as sender_actions

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

PHONE = {"width": 375, "height": 800}
# What a hostile or broken server may answer: markup, and a token too long for any line.
LONG_REPLY = "5.1.1 <script>alert(1)</script><img src=x onerror=alert(2)> " + "A" * 250


@pytest.fixture
def open_page(browser):
    contexts = []

    def open_(viewport: dict[str, int]):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        return watch(context.new_page())

    yield open_
    for context in contexts:
        context.close()


def _sign_in(page, base: str) -> None:
    sign_in(page, base, "alice@example.org", PASSWORD)


def _sideways(page) -> int:
    """How many pixels the page is wider than the window (0: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _failed_message(send) -> Message:
    message = Message.objects.get(public_id=send().json()["id"])
    error = {"category": "recipient_rejected", "smtp_code": 550, "message": LONG_REPLY}
    Message.objects.filter(pk=message.pk).update(status="failed", last_error=error)
    DeliveryAttempt.objects.create(
        message=message,
        number=1,
        started_at=message.created_at,
        outcome="failed",
        category="recipient_rejected",
        smtp_code=550,
        reply=LONG_REPLY,
    )
    return message


def test_the_columns_a_person_needs_stay_on_a_phone(live_server, alice, send, open_page):
    message = _failed_message(send)  # Its send is in the API request log too.
    Invoice.objects.create(
        user=alice, stripe_invoice_id="in_1", number="INV-1", amount_due=1900, status="paid", created_at=timezone.now()
    )
    page = open_page(PHONE)
    _sign_in(page, live_server.url)
    for path, column in [
        ("/messages/api-requests/", "Status"),
        (f"/messages/{message.public_id}/", "Outcome"),
        ("/billing/", "Amount"),
        ("/account/activity/", "Who"),
        ("/dashboard/", "Failed"),
    ]:
        page.goto(f"{live_server.url}{path}")
        if path == "/dashboard/":
            page.click("summary:has-text('As a table')")
        header = page.locator("th", has_text=column)
        assert header.count() == 1, path
        assert header.is_visible(), f"{path}: the {column} column is hidden at a phone's width"
        shot(page, "phone" + path.rstrip("/").replace("/", "-"))
    assert page.problems == [], page.problems


def test_long_server_replies_wrap_and_stay_text(live_server, alice, send, open_page, relay_settings):
    message = _failed_message(send)
    sender = sender_actions.create_sender(
        alice,
        {
            "provider": "smtp",
            "from_email": "alice@example.org",
            "host": "127.0.0.1",
            "port": 2525,
            "security": "starttls",
            "password": "pw",
        },
    )
    sender.last_verify_error = {"category": "rejected", "smtp_code": 554, "message": LONG_REPLY, "hint": ""}
    sender.save(update_fields=["last_verify_error"])
    for name, viewport in [("desktop", {"width": 1200, "height": 900}), ("phone", PHONE)]:
        page = open_page(viewport)
        _sign_in(page, live_server.url)
        for path in [f"/messages/{message.public_id}/", f"/senders/{sender.public_id}/", "/keys/"]:
            page.goto(f"{live_server.url}{path}")
            assert _sideways(page) <= 0, f"{name} {path}: the page is {_sideways(page)} px too wide"
            # The reply is shown as text: no markup of the server's runs.
            assert page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
            shot(page, f"{name}-long-reply" + path.rstrip("/").replace("/", "-")[:20])
        assert page.problems == [], page.problems


def test_a_slow_verification_shows_it_is_working_and_goes_once(live_server, alice, open_page, relay_settings):
    relay_settings.SMTP_VERIFY_TIMEOUT = 3  # The server never answers: the verification waits.
    silent = SilentServer().start()
    try:
        sender = sender_actions.create_sender(
            alice,
            {
                "provider": "smtp",
                "from_email": "alice@example.org",
                "host": "127.0.0.1",
                "port": silent.port,
                "security": "starttls",
                "password": "pw",
            },
        )
        page = open_page(PHONE)
        _sign_in(page, live_server.url)
        page.goto(f"{live_server.url}/senders/{sender.public_id}/")
        # What the page shows while the answer is awaited (seconds), noted for after it came:
        # Playwright cannot look into a page while it waits for the next one.
        page.evaluate(
            """document.addEventListener("submit", (event) => setTimeout(() => {
                 const button = event.target.querySelector("button");
                 sessionStorage.setItem("busy", JSON.stringify(
                   [button.textContent, button.disabled, event.target.getAttribute("aria-busy")]));
               }, 100))"""
        )
        page.click("button:has-text('Verify connection')")
        page.wait_for_selector("text=Verification failed", timeout=20000)
        assert json.loads(page.evaluate("sessionStorage.getItem('busy')")) == ["Verifying…", True, "true"]
        # The page of the answer has a working button.
        assert page.locator("button:has-text('Verify connection')").is_enabled()
    finally:
        silent.stop()
    assert page.problems == [], page.problems
