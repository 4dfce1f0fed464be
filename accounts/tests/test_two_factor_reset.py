"""Staff reset the two-factor authentication of a customer who lost their authenticator.

sam is in Support, root is a superuser; alice lost her phone; charlie keeps his.
"""

import base64
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp

from accounts import twofactor
from accounts.models import AuthenticatorDevice
from auditlog.events import record
from auditlog.models import AuditEvent
from conftest import PASSWORD

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


def _reset(client, pk, reason="lost her phone, identity checked on a call", **extra):
    form = {"action": "reset_two_factor", "_selected_action": [pk], "apply": "1", "reason": reason}
    return client.post(USERS, form, **extra)


def test_support_resets_alices_two_factor_with_a_reason(client, sam, alice, alices_phone, charlie):
    AuthenticatorDevice.objects.create(user=alice, name="Authenticator app", confirmed=False)  # A set-up left half-way.
    charlies_phone = AuthenticatorDevice.objects.create(user=charlie, name="Authenticator app", confirmed=True)
    client.force_login(sam)
    ask = client.post(USERS, {"action": "reset_two_factor", "_selected_action": [alice.pk]})
    assert ask.status_code == 200 and "Kept in the audit log" in ask.content.decode()
    assert AuthenticatorDevice.objects.filter(user=alice).count() == 2  # Nothing happens before a reason.
    assert _reset(client, alice.pk, reason="").status_code == 200  # Nor with an empty one.
    assert AuthenticatorDevice.objects.filter(user=alice).count() == 2

    done = _reset(client, alice.pk)
    assert done.status_code == 302
    assert "1 of 1 changed" in client.get(done["Location"]).content.decode()
    assert not AuthenticatorDevice.objects.filter(user=alice).exists()
    assert AuthenticatorDevice.objects.filter(pk=charlies_phone.pk).exists()
    event = AuditEvent.objects.get(action="2fa.reset")
    assert (event.actor, event.actor_label, event.actor_is_staff) == (sam, sam.email, True)
    assert (event.account_id, event.target_id) == (alice.pk, str(alice.pk))
    assert event.detail == {"reason": "lost her phone, identity checked on a call", "devices": 2}
    assert not AuditEvent.objects.filter(action="2fa.reset", account_id=charlie.pk).exists()


def test_alice_then_signs_in_with_her_password_alone_and_sets_up_a_new_authenticator(client, sam, alice, alices_phone):
    old_secret = alices_phone.bin_key
    assert client.post("/login/", {"username": alice.email, "password": PASSWORD})["Location"] == "/login/verify/"
    staff = Client()
    staff.force_login(sam)
    _reset(staff, alice.pk)
    # The sign-in that was waiting for a code from the lost phone starts over, with the password alone.
    assert client.get("/login/verify/")["Location"] == "/login/"
    assert client.post("/login/", {"username": alice.email, "password": PASSWORD})["Location"] == "/dashboard/"
    assert client.get("/dashboard/").status_code == 200

    page = client.get("/account/two-factor/").content.decode()
    assert "<svg" in page and "Key:" in page
    new = AuthenticatorDevice.objects.get(user=alice, confirmed=False)
    assert new.bin_key != old_secret
    assert client.post("/account/two-factor/", {"code": _code(new)}).status_code == 302
    assert AuthenticatorDevice.objects.get(user=alice).confirmed
    client.logout()
    assert client.post("/login/", {"username": alice.email, "password": PASSWORD})["Location"] == "/login/verify/"


def test_alice_sees_the_reset_and_its_reason_but_not_who_nor_where(client, sam, alice, alices_phone):
    client.force_login(sam)
    _reset(client, alice.pk, reason="lost phone, ticket 4711", REMOTE_ADDR="198.51.100.9")
    client.force_login(alice)
    page = client.get("/account/activity/").content.decode()
    assert "2fa.reset" in page and "lost phone, ticket 4711" in page and "3drake staff" in page
    assert "sam@3drake.test" not in page and "198.51.100.9" not in page


def test_staff_without_the_permission_cannot_reset_two_factor(client, alice, alices_phone, django_user_model):
    """Seeing accounts is not enough: the action is Support's (accounts.reset_two_factor)."""
    viewer = django_user_model.objects.create_user("viewer@3drake.test", STAFF_PASSWORD, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(viewer)
    listing = client.get(USERS)
    assert listing.status_code == 200 and 'value="reset_two_factor"' not in listing.content.decode()
    _reset(client, alice.pk)  # Posted by hand: the admin has no such action for them.
    assert AuthenticatorDevice.objects.filter(pk=alices_phone.pk).exists()
    assert not AuditEvent.objects.filter(action="2fa.reset").exists()

    support = Group.objects.get(name="Support")
    assert support.permissions.filter(codename="reset_two_factor", content_type__app_label="accounts").exists()
    viewer.groups.add(support)
    assert 'value="reset_two_factor"' in client.get(USERS).content.decode()


def test_only_a_superuser_resets_a_staff_members_two_factor(client, sam, root, django_user_model):
    """Support may not strip an administrator's (or a colleague's) second factor."""
    roots_phone = AuthenticatorDevice.objects.create(user=root, name="phone", confirmed=True)
    colleague = django_user_model.objects.create_user("sue@3drake.test", STAFF_PASSWORD, is_staff=True)
    sues_phone = AuthenticatorDevice.objects.create(user=colleague, name="phone", confirmed=True)
    client.force_login(sam)
    for target in (root, colleague, sam):
        response = _reset(client, target.pk)
        assert response.status_code == 302
        assert "only a superuser" in client.get(response["Location"]).content.decode().lower()
    assert AuthenticatorDevice.objects.filter(pk__in=[roots_phone.pk, sues_phone.pk]).count() == 2
    assert not AuditEvent.objects.filter(action="2fa.reset").exists()

    client.force_login(root)
    assert _reset(client, colleague.pk, reason="new phone").status_code == 302
    assert not AuthenticatorDevice.objects.filter(pk=sues_phone.pk).exists()
    assert AuditEvent.objects.get(action="2fa.reset").actor == root


def test_staff_see_whether_two_factor_is_on_never_its_secret(client, sam, alice, alices_phone):
    secret = alices_phone.bin_key
    forms = [secret.hex(), base64.b32encode(secret).decode().rstrip("="), alices_phone.key_encrypted]
    client.force_login(sam)
    account = client.get(f"{USERS}{alice.pk}/change/").content.decode()
    assert "Two-factor" in account and "on, since" in account
    ask = client.post(USERS, {"action": "reset_two_factor", "_selected_action": [alice.pk]}).content.decode()
    done = _reset(client, alice.pk)
    shown = [account, ask, client.get(done["Location"]).content.decode()]
    assert not [form for form in forms for page in shown if form in page]
    after = client.get(f"{USERS}{alice.pk}/change/").content.decode()
    assert "Two-factor" in after and "on, since" not in after


def test_resetting_an_account_without_two_factor_changes_and_records_nothing(client, sam, alice, alices_phone):
    assert twofactor.reset(alice, reason="lost phone", actor=sam) is True
    assert twofactor.reset(alice, reason="lost phone", actor=sam) is False  # A second click, another agent.
    assert AuditEvent.objects.filter(action="2fa.reset").count() == 1
    client.force_login(sam)
    response = _reset(client, alice.pk)
    assert "0 of 1 changed" in client.get(response["Location"]).content.decode()
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


def test_alice_is_mailed_when_support_resets_her_two_factor(
    client, sam, alice, alices_phone, mailoutbox, django_capture_on_commit_callbacks
):
    """A reset asked for in her name (social engineering) is noticed by the one who can tell:
    it was mailed to nobody before (a review's open point). Sent once the reset committed."""
    client.force_login(sam)
    with django_capture_on_commit_callbacks(execute=True):
        _reset(client, alice.pk)
    assert [m.to for m in mailoutbox] == [["alice@example.org"]]
    body = mailoutbox[0].body
    assert "lost her phone, identity checked on a call" in body
    assert "If you did not ask for this" in body
    _reset(client, alice.pk)  # Nothing left to reset: no second mail.
    assert len(mailoutbox) == 1
