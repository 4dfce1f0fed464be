"""The console's forms in a real browser, as a screen reader reads them: each field's help and
its error are its accessible description, not only text placed near it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from drake.testing.browser import shot, sign_in, watch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

# Ids a control names in aria-describedby that no element of the page has.
DANGLING = """() => [...document.querySelectorAll('[aria-describedby]')].flatMap(el =>
    el.getAttribute('aria-describedby').split(/\\s+/).filter(id => id && !document.getElementById(id))
      .map(id => `${el.name || el.id}: ${id}`))"""


@pytest.fixture
def page(browser):
    context = browser.new_context()
    yield watch(context.new_page())
    context.close()


def test_a_fields_help_and_error_are_read_with_it(page, live_server):
    page.goto(f"{live_server.url}/signup/")
    assert page.evaluate(DANGLING) == []
    expect(page.locator("#id_password")).to_have_accessible_description(
        re.compile("at least 10 characters", re.IGNORECASE)
    )

    page.fill("#id_email", "dana@example.org")
    page.fill("#id_password", "short")
    page.click("button[type=submit]")
    shot(page, "signup-error")
    assert page.evaluate(DANGLING) == []
    password = page.locator("#id_password")
    expect(password).to_have_attribute("aria-invalid", "true")
    expect(password).to_have_accessible_description(re.compile("too short", re.IGNORECASE))
    assert page.problems == []


def test_the_sender_forms_describe_their_fields(page, live_server, alice):
    sign_in(page, live_server.url, "alice@example.org", "correct horse battery staple")
    page.goto(f"{live_server.url}/senders/new/")
    assert page.evaluate(DANGLING) == []
    expect(page.locator("#id_password")).to_have_accessible_description(re.compile("Stored encrypted", re.IGNORECASE))
    page.check("input[name=provider][value=smtp]")
    page.fill("#id_password", "an smtp password")
    page.click("button.primary")
    assert page.evaluate(DANGLING) == []
    expect(page.locator("#id_host")).to_have_accessible_description(re.compile("host is required", re.IGNORECASE))
    assert page.problems == []
