"""The console in a real browser at a phone's width and with what SMTP servers say.

A verification, which may wait on a slow server for seconds, shows that it is working and
cannot be sent twice.
"""

from __future__ import annotations

import json

import pytest

from conftest import PASSWORD
from drake.testing.smtp import SilentServer
from relay.tests.test_console_browser import browser  # noqa: F401 (a fixture)
from senders import actions as sender_actions

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

PHONE = {"width": 375, "height": 800}


@pytest.fixture
def open_page(browser):  # noqa: F811
    contexts = []

    def open_(viewport: dict[str, int]):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.problems = []
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        return page

    yield open_
    for context in contexts:
        context.close()


def _sign_in(page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", "alice@example.org")
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Sign in')")
    assert page.url.endswith("/dashboard/")


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
