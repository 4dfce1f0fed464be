"""A lost authenticator, in a real browser (Playwright driving Debian's Chromium).

alice is stuck at the code step; sam, in Support, signs in to the back office with his own code,
resets her two-factor from the accounts list with a reason; alice signs in with her password
alone and sets up a new authenticator from the key the page shows. No page may log a console
error or a CSP violation.
"""

from __future__ import annotations

import base64
import re
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django_otp.oath import totp

from accounts.actions import create_account
from accounts.models import AuthenticatorDevice
from auditlog.models import AuditEvent
from drake.testing.browser import sign_in, watch

PASSWORD = "a long browser passphrase"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]


@pytest.fixture
def page(browser):
    page = browser.new_page()
    page.set_default_timeout(10_000)
    # The admin's pages name no icon, so Chromium asks for /favicon.ico: not ours to test.
    yield watch(page, ignore=("/favicon.ico",))
    page.context.close()


def _code(key: bytes) -> str:
    return str(totp(key)).zfill(6)


def test_support_resets_a_lost_authenticator_and_alice_sets_up_a_new_one(page, live_server, settings):
    settings.ADMIN_REQUIRE_2FA = True  # As in production: sam needs his own code to get in.
    call_command("setup_roles", stdout=StringIO())
    sam = create_account("sam@3drake.test", PASSWORD, is_staff=True, via="shell")
    sam.groups.add(Group.objects.get(name="Support"))
    sams_phone = AuthenticatorDevice.objects.create(user=sam, name="phone", confirmed=True)
    alice = create_account("alice@example.org", PASSWORD, via="shell")
    AuthenticatorDevice.objects.create(user=alice, name="Authenticator app", confirmed=True)  # Lost.
    base = live_server.url

    page.goto(f"{base}/login/")
    page.fill("#id_username", alice.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    assert page.url.endswith("/login/verify/")  # Stuck: the code is on the lost phone.
    page.context.clear_cookies()

    page.goto(f"{base}/admin/login/?next=/admin/accounts/user/")
    page.fill("#id_username", sam.email)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", _code(sams_phone.bin_key))
    page.click("input[type=submit]")
    assert page.url.endswith("/admin/accounts/user/")
    page.check(f"input[name=_selected_action][value='{alice.pk}']")
    page.select_option("select[name=action]", "reset_two_factor")
    page.click("button[name=index]")
    page.fill("textarea[name=reason]", "lost her phone, identity checked on a call")
    page.click("input[type=submit]")
    assert "1 of 1 changed" in page.inner_text("ul.messagelist")
    assert not AuthenticatorDevice.objects.filter(user=alice).exists()
    assert AuditEvent.objects.get(action="2fa.reset").actor == sam
    page.context.clear_cookies()

    sign_in(page, base, alice.email, PASSWORD)
    page.goto(f"{base}/account/two-factor/")
    shown = re.search(r"Key:\s*([A-Z2-7]+)", page.inner_text("main")).group(1)
    key = base64.b32decode(shown + "=" * (-len(shown) % 8))
    page.fill("#id_code", _code(key))
    page.click("button:has-text('Turn on')")
    assert "Two-factor authentication is on" in page.content()
    page.goto(f"{base}/account/activity/")
    assert "2fa.reset" in page.inner_text("main") and "lost her phone" in page.inner_text("main")

    assert page.problems == [], page.problems
