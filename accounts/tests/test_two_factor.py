"""Customers may turn on TOTP: sign-in then needs the code; security events are listed for them."""

import re
from datetime import timedelta

import time_machine
from django.core import mail
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from auditlog.models import AuditEvent
from conftest import PASSWORD


def _code(device):
    return str(totp(device.bin_key)).zfill(6)


def test_alice_turns_on_two_factor_and_signs_in_with_it(client, alice):
    client.force_login(alice)
    page = client.get("/account/two-factor/").content.decode()
    assert "<svg" in page and "Key:" in page
    device = TOTPDevice.objects.get(user=alice, confirmed=False)
    assert (
        client.post("/account/two-factor/", {"code": "000000" if _code(device) != "000000" else "111111"}).status_code
        == 200
    )
    assert not TOTPDevice.objects.filter(user=alice, confirmed=True).exists()
    later = timezone.now() + timedelta(seconds=5)  # django-otp throttles retries after a miss.
    with time_machine.travel(later):
        assert client.post("/account/two-factor/", {"code": _code(device)}).status_code == 302
    assert TOTPDevice.objects.get(user=alice).confirmed
    client.logout()

    # The password alone no longer signs in.
    response = client.post("/login/", {"username": "alice@example.org", "password": PASSWORD})
    assert response["Location"] == "/login/verify/"
    assert client.get("/dashboard/").status_code == 302
    assert client.post("/login/verify/", {"code": "12345x"}).status_code == 200
    assert client.get("/dashboard/").status_code == 302
    with time_machine.travel(later + timedelta(seconds=40)):
        response = client.post("/login/verify/", {"code": _code(device)})
        assert response.status_code == 302
        assert client.get("/dashboard/").status_code == 200
    assert AuditEvent.objects.filter(action="2fa.enabled", account_id=alice.pk).count() == 1
    assert (
        AuditEvent.objects.filter(action="login.succeeded", account_id=alice.pk, detail__second_factor=True).count()
        == 1
    )


def test_turning_it_off_needs_a_current_code(client, alice):
    device = TOTPDevice.objects.create(user=alice, name="app", confirmed=True)
    client.force_login(alice)
    client.post("/account/two-factor/", {"code": "999999" if _code(device) != "999999" else "888888"})
    assert TOTPDevice.objects.filter(user=alice).exists()
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        client.post("/account/two-factor/", {"code": _code(device)})
    assert not TOTPDevice.objects.filter(user=alice).exists()


def test_the_verify_step_needs_a_pending_login(client, db):
    assert client.get("/login/verify/")["Location"] == "/login/"


def test_alice_sees_her_recent_security_activity(client, alice, make_key):
    make_key(alice)
    client.post("/login/", {"username": "alice@example.org", "password": "wrong"})
    client.force_login(alice)
    client.post(
        "/account/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a brand new passphrase",
            "new_password2": "a brand new passphrase",
        },
    )
    page = client.get("/account/activity/").content.decode()
    for action in ["api_key.created", "login.failed", "password.changed"]:
        assert action in page


def test_a_password_reset_link_does_not_sign_in_past_two_factor(client, alice):
    TOTPDevice.objects.create(user=alice, name="app", confirmed=True)
    client.post("/password-reset/", {"email": "alice@example.org"})
    uid, token = re.search(r"/password-reset/([^/\s]+)/([^/\s]+)/", mail.outbox[-1].body).groups()
    # Whoever reads the reset mail must still pass the second factor: the activation URL took
    # the very same token (one generator for both) and signed in at once.
    client.get(f"/activate/{uid}/{token}/")
    assert client.get("/dashboard/").status_code == 302
