"""Staff reset the two-factor authentication of a customer who lost their authenticator.

sam is in Support, root is a superuser; alice lost her phone; charlie keeps his.
"""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from django_otp.oath import totp

from accounts import twofactor
from accounts.models import AuthenticatorDevice
from auditlog.events import record
from auditlog.models import AuditEvent

STAFF_PASSWORD = "a sturdy staff passphrase"
USERS = "/admin/accounts/user/"


@pytest.fixture(autouse=True)
def roles(db, settings):
    settings.ADMIN_REQUIRE_2FA = False  # force_login cannot pass a TOTP step; one test below does.
    call_command("setup_roles", stdout=StringIO())


@pytest.fixture
def sam(django_user_model):
    user = django_user_model.objects.create_user("sam@3drake.test", STAFF_PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="Support"))
    return user


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root@3drake.test", STAFF_PASSWORD)


@pytest.fixture
def alices_phone(alice):
    return AuthenticatorDevice.objects.create(user=alice, name="Authenticator app", confirmed=True)


def _code(device):
    return str(totp(device.bin_key)).zfill(6)


def test_resetting_an_account_without_two_factor_changes_and_records_nothing(client, sam, alice, alices_phone):
    assert twofactor.reset(alice, reason="lost phone", actor=sam) is True
    assert twofactor.reset(alice, reason="lost phone", actor=sam) is False  # A second click, another agent.
    assert AuditEvent.objects.filter(action="2fa.reset").count() == 1


def test_a_staff_member_whose_two_factor_is_reset_is_out_of_the_back_office(client, root, sam, settings):
    """The session sam verified with the lost phone is verified no more: the admin asks again."""
    settings.ADMIN_REQUIRE_2FA = True
    phone = AuthenticatorDevice.objects.create(user=sam, name="phone", confirmed=True)
    login = {"username": sam.email, "password": STAFF_PASSWORD, "otp_token": _code(phone)}
    assert client.post("/admin/login/?next=/admin/", login).status_code == 302
    assert client.get(USERS).status_code == 200
    twofactor.reset(sam, reason="phone stolen", actor=root)
    assert client.get(USERS)["Location"].startswith("/admin/login/")


def test_retention_and_alices_deletion_keep_what_staff_did(client, sam, alice, alices_phone, settings):
    """2fa.* events are the customer's own and go after the retention window; a staff reset,
    with its reason, is staff's trail and stays (as a suspension does)."""
    from accounts import privacy

    with time_machine.travel(timezone.now() - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS + 5)):
        record("2fa.enabled", actor=alice, account=alice)
        twofactor.reset(alice, reason="lost phone", actor=sam)
    call_command("rotate_logs", "--quiet", stdout=StringIO())
    assert not AuditEvent.objects.filter(action="2fa.enabled").exists()  # Hers went,
    assert AuditEvent.objects.filter(action="2fa.reset", actor=sam).exists()  # staff's stays.
    privacy.delete_account(alice, via="shell")
    assert AuditEvent.objects.filter(action="2fa.reset", actor=sam).exists()
