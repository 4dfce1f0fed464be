"""Customers may turn on TOTP: sign-in then needs the code; security events are listed for them."""

import base64
import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from django_otp.oath import totp

from accounts.models import AuthenticatorDevice
from auditlog.models import AuditEvent
from conftest import PASSWORD
from drake.testing.db import dump_every_table
from drake.testing.smtp import free_port
from senders import actions


def _code(device):
    return str(totp(device.bin_key)).zfill(6)


def test_alice_turns_on_two_factor_and_signs_in_with_it(client, alice):
    client.force_login(alice)
    page = client.get("/account/two-factor/").content.decode()
    assert "<svg" in page and "Key:" in page
    device = AuthenticatorDevice.objects.get(user=alice, confirmed=False)
    assert (
        client.post("/account/two-factor/", {"code": "000000" if _code(device) != "000000" else "111111"}).status_code
        == 200
    )
    assert not AuthenticatorDevice.objects.filter(user=alice, confirmed=True).exists()
    later = timezone.now() + timedelta(seconds=5)  # django-otp throttles retries after a miss.
    with time_machine.travel(later):
        assert client.post("/account/two-factor/", {"code": _code(device)}).status_code == 302
    assert AuthenticatorDevice.objects.get(user=alice).confirmed
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
    device = AuthenticatorDevice.objects.create(user=alice, name="app", confirmed=True)
    client.force_login(alice)
    client.post("/account/two-factor/", {"code": "999999" if _code(device) != "999999" else "888888"})
    assert AuthenticatorDevice.objects.filter(user=alice).exists()
    with time_machine.travel(timezone.now() + timedelta(seconds=5)):
        client.post("/account/two-factor/", {"code": _code(device)})
    assert not AuthenticatorDevice.objects.filter(user=alice).exists()


def _wrong(device):
    return "000000" if _code(device) != "000000" else "111111"


def test_a_right_code_during_the_back_off_after_misses_is_not_called_wrong(client, alice):
    """django-otp refuses every code for a while after a miss (1 s, 2 s, 4 s...): the page says
    to wait, instead of calling the right code wrong."""
    device = AuthenticatorDevice.objects.create(user=alice, name="app", confirmed=True)
    response = client.post("/login/", {"username": "alice@example.org", "password": PASSWORD})
    assert response["Location"] == "/login/verify/"
    start = timezone.now()
    for n in range(3):  # Three misses, each after the back-off of the one before: 4 s now.
        with time_machine.travel(start + timedelta(seconds=10 * n), tick=False):
            page = client.post("/login/verify/", {"code": _wrong(device)}).content.decode()
            assert "That code is not right" in page
    with time_machine.travel(start + timedelta(seconds=21), tick=False):
        response = client.post("/login/verify/", {"code": _code(device)})
        assert response.status_code == 200
        page = response.content.decode()
        assert "That code is not right" not in page
        assert "Too many wrong codes" in page and "wait 3 seconds" in page
    with time_machine.travel(start + timedelta(seconds=25), tick=False):
        assert client.post("/login/verify/", {"code": _code(device)}).status_code == 302

    # Turning it off, the same.
    with time_machine.travel(start + timedelta(seconds=40), tick=False):
        client.post("/account/two-factor/", {"code": _wrong(device)})
    with time_machine.travel(start + timedelta(seconds=40.5), tick=False):
        page = client.post("/account/two-factor/", {"code": _code(device)}).content.decode()
        assert "Too many wrong codes" in page
    assert AuthenticatorDevice.objects.filter(user=alice).exists()


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


def test_a_failed_sender_verification_shows_as_failed_in_the_activity(client, alice, settings):
    settings.SMTP_ALLOW_PRIVATE_HOSTS, settings.SMTP_ALLOWED_PORTS = True, "*"
    sender = actions.create_sender(
        alice,
        {
            "provider": "smtp",
            "from_email": "alice@example.org",
            "host": "127.0.0.1",
            "port": free_port(),  # Nothing listens there: the connection is refused.
            "security": "starttls",
            "password": "pw",
        },
    )
    assert actions.verify_sender(sender, actor=alice, via="console") is not None
    client.force_login(alice)
    page = client.get("/account/activity/").content.decode()
    row = re.search(r"<tr>(?:(?!</tr>).)*sender\.verified(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    assert "failed" in row


def test_a_password_reset_link_does_not_sign_in_past_two_factor(client, alice):
    AuthenticatorDevice.objects.create(user=alice, name="app", confirmed=True)
    client.post("/password-reset/", {"email": "alice@example.org"})
    uid, token = re.search(r"/password-reset/([^/\s]+)/([^/\s]+)/", mail.outbox[-1].body).groups()
    # Whoever reads the reset mail must still pass the second factor: the activation URL took
    # the very same token (one generator for both) and signed in at once.
    client.post(f"/activate/{uid}/{token}/", {"password": PASSWORD})
    assert client.get("/dashboard/").status_code == 302


def test_an_authenticators_secret_is_encrypted_at_rest(client, alice):
    device = AuthenticatorDevice.objects.create(user=alice, name="Authenticator app", confirmed=True)
    dump = dump_every_table()
    secret = device.bin_key
    for form in (secret, secret.hex().encode(), base64.b32encode(secret), base64.b32encode(secret).rstrip(b"=")):
        assert form not in dump
    assert device.verify_token(_code(device))  # And it still signs in.


def test_a_secret_copied_to_another_accounts_device_does_not_decrypt(alice, django_user_model):
    from senders import crypto

    bob = django_user_model.objects.create_user("bob@example.org", PASSWORD)
    stolen = AuthenticatorDevice.objects.create(user=alice, name="app", confirmed=True).key_encrypted
    device = AuthenticatorDevice.objects.create(user=bob, name="app", confirmed=True, key_encrypted=stolen)
    with pytest.raises(crypto.DecryptionError):
        device.bin_key  # noqa: B018


def test_authenticators_kept_by_django_otp_move_encrypted(alice):
    """Migration 0006: devices of django-otp's TOTPDevice (secret in clear) move, secret and
    state kept, and no clear copy stays behind."""
    import importlib

    from django.apps import apps
    from django_otp.plugins.otp_totp.models import TOTPDevice

    old = TOTPDevice.objects.create(user=alice, name="phone", confirmed=True, last_t=7)
    importlib.import_module("accounts.migrations.0006_move_totp_devices").move(apps, None)
    assert not TOTPDevice.objects.exists()
    moved = AuthenticatorDevice.objects.get(user=alice)
    assert (moved.name, moved.confirmed, moved.last_t, moved.created_at) == ("phone", True, 7, old.created_at)
    assert moved.bin_key == old.bin_key
    assert old.key.encode() not in dump_every_table()


def test_an_authenticators_secret_follows_a_key_rotation(alice, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    device = AuthenticatorDevice.objects.create(user=alice, name="app", confirmed=True)
    secret = device.bin_key
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.FIELD_ENCRYPTION_KEYS]
    call_command("rotate_encryption_keys", "--no-progress")
    settings.FIELD_ENCRYPTION_KEYS = settings.FIELD_ENCRYPTION_KEYS[:1]  # The old key dropped.
    assert AuthenticatorDevice.objects.get(pk=device.pk).bin_key == secret


def test_rolling_migration_0006_back_gives_authenticators_back_to_django_otp(alice):
    """Migrating accounts back past 0006 (a rolled-back deploy) drops AuthenticatorDevice's table
    with 0005: every authenticator, and with it every account's and staff member's second
    factor, would be gone. The reverse moves them back, as they were."""
    import importlib

    from django.apps import apps
    from django_otp.plugins.otp_totp.models import TOTPDevice

    migration = importlib.import_module("accounts.migrations.0006_move_totp_devices").Migration
    device = AuthenticatorDevice.objects.create(user=alice, name="phone", confirmed=True, last_t=7)
    migration.operations[0].reverse_code(apps, None)
    old = TOTPDevice.objects.get(user=alice)
    assert (old.name, old.confirmed, old.last_t, old.created_at) == ("phone", True, 7, device.created_at)
    assert old.bin_key == device.bin_key
    assert not AuthenticatorDevice.objects.exists()


def _password_step(client):
    response = client.post("/login/", {"username": "alice@example.org", "password": PASSWORD})
    assert response["Location"] == "/login/verify/"


def test_a_password_step_waits_for_its_code_ten_minutes_at_most(client, alice):
    """A session that passed the password step stayed pending for good: days later, a code
    alone signed it in. Now the code must follow the password within ten minutes."""
    device = AuthenticatorDevice.objects.create(user=alice, name="app", confirmed=True)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _password_step(client)
    with time_machine.travel(start + timedelta(minutes=10, seconds=1), tick=False):
        response = client.post("/login/verify/", {"code": _code(device)})
        assert response.status_code == 302 and response["Location"] == "/login/"
        assert "timed out" in client.get("/login/").content.decode()
        assert client.get("/dashboard/").status_code == 302
        assert client.get("/login/verify/")["Location"] == "/login/"  # Gone, not just refused.
        _password_step(client)
    with time_machine.travel(start + timedelta(minutes=19, seconds=50), tick=False):
        assert client.post("/login/verify/", {"code": _code(device)})["Location"] == "/dashboard/"


def test_a_password_change_voids_a_pending_password_step(client, alice):
    """The pending step outlived a password change: whoever had the old password (and the
    code) still signed in with it."""
    device = AuthenticatorDevice.objects.create(user=alice, name="app", confirmed=True)
    _password_step(client)
    alice.set_password("the new passphrase after a leak")
    alice.save()
    assert client.post("/login/verify/", {"code": _code(device)})["Location"] == "/login/"
    assert client.get("/dashboard/").status_code == 302
