"""Staff roles, audited admin access, append-only audit events, and the staff second factor."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from accounts.models import ApiKey, AuthenticatorDevice
from auditlog.models import AuditEvent
from billing.models import Invoice, Plan
from senders import actions as sender_actions
from senders.models import Sender

STAFF_PASSWORD = "a sturdy staff passphrase"


@pytest.fixture(autouse=True)
def roles(db, settings):
    settings.ADMIN_REQUIRE_2FA = False  # force_login cannot pass a TOTP step; one test below does.
    call_command("setup_roles", stdout=open("/dev/null", "w"))  # noqa: SIM115


def _staff(django_user_model, email, group):
    user = django_user_model.objects.create_user(email, STAFF_PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def sam(django_user_model):
    return _staff(django_user_model, "sam@3drake.test", "Support")


@pytest.fixture
def fiona(django_user_model):
    return _staff(django_user_model, "fiona@3drake.test", "Finance")


@pytest.fixture
def alice_sender(alice):
    return sender_actions.create_sender(
        alice, {"provider": "gmail", "from_email": "alice@example.org", "password": "pw"}
    )


def _act(client, url, action, pk, reason):
    return client.post(url, {"action": action, "_selected_action": [pk], "apply": "1", "reason": reason})


def test_support_does_exactly_the_support_actions(client, sam, alice, alice_key, alice_sender):
    client.force_login(sam)
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get(f"/admin/accounts/user/{alice.pk}/change/").status_code == 200
    assert client.get("/admin/senders/sender/").status_code == 200
    assert client.get("/admin/relay/message/").status_code == 200

    key = ApiKey.objects.get(user=alice)
    assert _act(client, "/admin/accounts/user/", "suspend", alice.pk, "chargeback fraud").status_code == 302
    assert _act(client, "/admin/accounts/apikey/", "revoke", key.pk, "leaked on a forum").status_code == 302
    assert _act(client, "/admin/senders/sender/", "pause", alice_sender.pk, "spam reports").status_code == 302
    assert _act(client, "/admin/senders/sender/", "disable", alice_sender.pk, "phishing").status_code == 302
    alice.refresh_from_db()
    key.refresh_from_db()
    sender = Sender.objects.get(pk=alice_sender.pk)
    assert alice.suspended_at and key.revoked_at and sender.paused_at and sender.disabled_at
    for action, reason in [
        ("account.suspended", "chargeback fraud"),
        ("api_key.revoked", "leaked on a forum"),
        ("sender.disabled", "phishing"),
    ]:
        event = AuditEvent.objects.get(action=action)
        assert (event.actor, event.detail["reason"]) == (sam, reason)
    assert AuditEvent.objects.get(action="sender.paused").actor == sam

    # Nothing beyond that: no edits, no billing.
    response = client.post(f"/admin/accounts/user/{alice.pk}/change/", {"name": "Mallory", "is_staff": "on"})
    assert response.status_code == 403
    for url in ["/admin/billing/invoice/", "/admin/billing/subscription/", "/admin/billing/plan/"]:
        assert client.get(url).status_code == 403


def test_finance_sees_billing_and_nothing_else(client, fiona, alice):
    Invoice.objects.create(user=alice, stripe_invoice_id="in_1", number="INV-1", amount_due=1500, status="paid")
    client.force_login(fiona)
    for url in ["/admin/billing/invoice/", "/admin/billing/subscription/", "/admin/billing/plan/"]:
        assert client.get(url).status_code == 200
    export = client.post(
        "/admin/billing/invoice/", {"action": "export_csv", "_selected_action": [Invoice.objects.get().pk]}
    )
    assert export["Content-Type"] == "text/csv"
    assert "INV-1" in export.content.decode()
    # Plans too are read-only to Finance (billing/admin.py said "editable").
    plan = Plan.objects.default()
    assert client.post(f"/admin/billing/plan/{plan.pk}/change/", {"monthly_quota": 999_999}).status_code == 403
    assert Plan.objects.get(pk=plan.pk).monthly_quota == plan.monthly_quota
    for url in [
        "/admin/accounts/user/",
        "/admin/senders/sender/",
        "/admin/relay/message/",
        "/admin/auditlog/auditevent/",
    ]:
        assert client.get(url).status_code == 403


def test_viewing_an_account_in_the_admin_is_audited(client, sam, alice):
    client.force_login(sam)
    client.get(f"/admin/accounts/user/{alice.pk}/change/")
    event = AuditEvent.objects.get(action="admin.viewed")
    assert (event.actor, event.account_id, event.target_id) == (sam, alice.pk, str(alice.pk))


def test_opening_the_message_log_is_audited(client, sam):
    client.force_login(sam)
    client.get("/admin/relay/message/?status=failed")
    event = AuditEvent.objects.get(action="admin.listed")
    assert event.detail == {"model": "relay.message", "query": {"status": "failed"}}


def test_nobody_edits_or_deletes_audit_events(client, sam, django_user_model, alice):
    root = django_user_model.objects.create_superuser("root@3drake.test", STAFF_PASSWORD)
    event = AuditEvent.objects.filter(account_id=alice.pk).first()
    for user in (sam, root):
        client.force_login(user)
        assert client.post(f"/admin/auditlog/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
        assert client.post(f"/admin/auditlog/auditevent/{event.pk}/change/", {"action": "x"}).status_code in (403, 200)
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    event.action = "tampered"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(TypeError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).action != "tampered"


def test_staff_without_a_second_factor_cannot_reach_the_admin(client, sam, settings):
    settings.ADMIN_REQUIRE_2FA = True
    client.force_login(sam)
    response = client.get("/admin/accounts/user/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    # Password alone is not enough on the login form either.
    client.logout()
    login = client.post("/admin/login/", {"username": sam.email, "password": STAFF_PASSWORD})
    assert client.get("/admin/accounts/user/").status_code == 302
    assert login.status_code == 200


def test_without_a_second_factor_required_the_login_asks_for_the_password_alone(client, sam):
    """In development (ADMIN_REQUIRE_2FA off, this module's default) the admin's login form asked
    for a TOTP code all the same: staff without an authenticator could not sign in there."""
    page = client.get("/admin/login/").content.decode()
    assert 'name="password"' in page and "otp_token" not in page
    login = client.post("/admin/login/?next=/admin/", {"username": sam.email, "password": STAFF_PASSWORD})
    assert login.status_code == 302 and login["Location"] == "/admin/"
    assert client.get("/admin/accounts/user/").status_code == 200


def test_staff_with_a_verified_totp_code_get_in(client, sam, settings):
    from django_otp.oath import totp

    settings.ADMIN_REQUIRE_2FA = True
    device = AuthenticatorDevice.objects.create(user=sam, name="phone", confirmed=True)
    response = client.post(
        "/admin/login/?next=/admin/",
        {
            "username": sam.email,
            "password": STAFF_PASSWORD,
            "otp_device": device.persistent_id,
            "otp_token": str(totp(device.bin_key)).zfill(6),
        },
    )
    assert response.status_code == 302
    assert client.get("/admin/accounts/user/").status_code == 200


def test_the_account_page_links_to_its_records(client, django_user_model, alice):
    root = django_user_model.objects.create_superuser("root@3drake.test", STAFF_PASSWORD)
    client.force_login(root)
    page = client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert f"/admin/senders/sender/?user__id__exact={alice.pk}" in page
    assert f"/admin/billing/invoice/?user__id__exact={alice.pk}" in page
    assert f"/admin/auditlog/auditevent/?account_id__exact={alice.pk}" in page
    assert client.get(f"/admin/relay/message/?user__id__exact={alice.pk}").status_code == 200


# --- Found by a review: admins that audited nothing, and a secret shown to staff -------------


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root@3drake.test", STAFF_PASSWORD)


def test_every_admin_of_the_site_is_audited():
    """Django's GroupAdmin, django-otp's AuthenticatorDeviceAdmin and PlanAdmin were plain ModelAdmins."""
    from django.contrib import admin

    from drake.admin import AuditedAdmin

    unaudited = [m._meta.label for m, a in admin.site._registry.items() if not isinstance(a, AuditedAdmin)]
    assert unaudited == []


def test_staff_never_see_an_authenticators_key(client, root, alice):
    import base64

    device = AuthenticatorDevice.objects.create(user=alice, name="Authenticator app", confirmed=True)
    client.force_login(root)
    page = client.get(f"/admin/accounts/authenticatordevice/{device.pk}/change/")
    assert page.status_code == 200 and b"Authenticator app" in page.content
    shown = page.content.decode()
    assert device.bin_key.hex() not in shown and device.key_encrypted not in shown
    assert base64.b32encode(device.bin_key).decode().rstrip("=") not in shown
    assert client.get(f"/admin/accounts/authenticatordevice/{device.pk}/config/").status_code != 200  # its QR code
    assert AuditEvent.objects.filter(action="admin.viewed", actor=root, account_id=alice.pk).exists()
    # A lost phone: the device is deleted, and that is audited too.
    assert client.post(f"/admin/accounts/authenticatordevice/{device.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not AuthenticatorDevice.objects.exists()
    assert AuditEvent.objects.filter(action="admin.deleted", actor=root, account_id=alice.pk).exists()


def test_editing_a_plan_or_a_role_is_audited(client, root):
    plan = Plan.objects.default()
    client.force_login(root)
    fields = ("name", "slug", "rate_per_minute", "retention_days", "subject_policy", "price_cents")
    form = {name: getattr(plan, name) for name in fields}
    form.update(monthly_quota=999_999, stripe_price_id="", is_default="on", is_public="on")
    assert client.post(f"/admin/billing/plan/{plan.pk}/change/", form).status_code == 302
    event = AuditEvent.objects.get(action="admin.changed", target_type="billing.plan")
    assert event.actor == root and event.detail == {"fields": ["Monthly quota"]}

    support = Group.objects.get(name="Support")
    permissions = [*support.permissions.values_list("pk", flat=True)]
    response = client.post(
        f"/admin/auth/group/{support.pk}/change/", {"name": "Support", "permissions": permissions[:-1]}
    )
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="admin.changed", target_type="auth.group").actor == root


def test_a_csv_export_is_in_the_trail_of_each_account_in_it(client, fiona, alice, charlie):
    invoices = [
        Invoice.objects.create(user=user, stripe_invoice_id=f"in_{i}", number=f"INV-{i}", amount_due=1500)
        for i, user in enumerate([alice, charlie, alice])
    ]
    client.force_login(fiona)
    export = client.post(
        "/admin/billing/invoice/", {"action": "export_csv", "_selected_action": [i.pk for i in invoices]}
    )
    assert export["Content-Type"] == "text/csv"
    events = AuditEvent.objects.filter(action="admin.exported", actor=fiona)
    assert sorted((e.account_id or 0, e.detail.get("rows")) for e in events) == sorted(
        [(0, 3), (alice.pk, None), (charlie.pk, None)]
    )


# --- Review: staff trails lost to account deletion and to retention ----------------------------


def test_deleting_a_staff_account_keeps_its_access_trail_of_customers(client, sam, alice):
    """A support agent leaves: erasing their account must not erase what they did to customers."""
    from accounts import privacy

    client.force_login(sam)
    client.get(f"/admin/accounts/user/{alice.pk}/change/")
    _act(client, "/admin/accounts/user/", "suspend", alice.pk, "chargeback fraud")
    trail = set(AuditEvent.objects.filter(account_id=alice.pk, actor=sam).values_list("action", flat=True))
    assert trail == {"admin.viewed", "account.suspended"}
    client.logout()
    privacy.delete_account(sam, via="shell")
    kept = set(AuditEvent.objects.filter(account_id=alice.pk, actor_label=sam.email).values_list("action", flat=True))
    assert kept == {"admin.viewed", "account.suspended"}


def test_retention_keeps_what_staff_did_to_a_key_or_a_sender(client, sam, alice, alice_key, alice_sender, settings):
    """rotate_logs deletes customers' own security events, not support's revocations and pauses."""
    from datetime import timedelta
    from io import StringIO

    import time_machine
    from django.utils import timezone

    client.force_login(sam)
    key = ApiKey.objects.get(user=alice)
    with time_machine.travel(timezone.now() - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS + 5)):
        _act(client, "/admin/accounts/apikey/", "revoke", key.pk, "leaked on a forum")
        _act(client, "/admin/senders/sender/", "pause", alice_sender.pk, "spam reports")
    call_command("rotate_logs", "--quiet", stdout=StringIO())
    kept = set(AuditEvent.objects.filter(account_id=alice.pk, actor=sam).values_list("action", flat=True))
    assert {"api_key.revoked", "sender.paused"} <= kept


def test_once_a_staff_account_is_gone_its_trail_still_names_no_staff_member_nor_their_ip(client, sam, alice):
    """The console and the export hide staff's IP and email; a deleted staff actor (actor NULL)
    must not turn their events into 'anonymous' ones that show both, or that go with the customer."""

    from accounts import privacy
    from conftest import PASSWORD

    client.force_login(sam)
    client.get(f"/admin/accounts/user/{alice.pk}/change/", REMOTE_ADDR="198.51.100.7")
    client.logout()
    sam.delete()  # A superuser removes the leaver in the admin (or delete_account does).
    client.force_login(alice)
    page = client.get("/account/activity/").content.decode()
    assert "admin.viewed" in page
    assert "198.51.100.7" not in page and "sam@3drake.test" not in page
    export = client.post("/account/export/", {"password": PASSWORD})
    assert "198.51.100.7" not in b"".join(export.streaming_content).decode()
    client.logout()
    privacy.delete_account(alice, via="shell")
    assert AuditEvent.objects.filter(action="admin.viewed", actor_label="sam@3drake.test").exists()


def test_no_bulk_delete_nor_raw_sql_rewrites_the_trail(alice, django_user_model):
    """`update()` was refused but `filter().delete()` went through, and on PostgreSQL the app's
    own role could UPDATE or DELETE any event with plain SQL."""
    from django.db import DatabaseError, connection, transaction

    event = AuditEvent.objects.filter(account_id=alice.pk).first()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    if connection.vendor == "postgresql":
        for sql in [
            "UPDATE auditlog_auditevent SET action = 'tampered' WHERE id = %s",
            "DELETE FROM auditlog_auditevent WHERE id = %s",
        ]:
            with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == event.action
    # What may change: the actor's account going (actor NULL); what may delete: erasure.
    staff = django_user_model.objects.create_user("leaver@3drake.test", STAFF_PASSWORD, is_staff=True)
    from auditlog.events import record

    kept = record("admin.viewed", actor=staff, account=alice, target=alice)
    staff.delete()
    kept = AuditEvent.objects.get(pk=kept.pk)
    assert kept.actor_id is None and kept.actor_label == "leaver@3drake.test"
    assert AuditEvent.objects.filter(pk=event.pk).erase() == 1


def test_opening_one_of_an_accounts_audit_events_is_in_that_accounts_trail(client, sam, alice):
    """An audit event is the customer's record (their login IPs): viewing it in the admin was
    audited with no account, so it never showed in the customer's trail or export."""
    client.post("/login/", {"username": "alice@example.org", "password": "wrong"}, REMOTE_ADDR="203.0.113.7")
    event = AuditEvent.objects.get(action="login.failed", account_id=alice.pk)
    client.force_login(sam)
    assert client.get(f"/admin/auditlog/auditevent/{event.pk}/change/").status_code == 200
    viewed = AuditEvent.objects.get(action="admin.viewed", actor=sam)
    assert (viewed.account_id, viewed.target_type, viewed.target_id) == (alice.pk, "auditlog.auditevent", str(event.pk))


def test_the_back_office_login_tells_no_right_password_from_a_wrong_one(client, sam, settings):
    """With a second factor required, a right password without its code read "Please enter
    your OTP token." and a wrong one the usual error: a guesser learnt which password was
    right (and could use it on the console's login). Found by a security review."""
    import re

    settings.ADMIN_REQUIRE_2FA = True
    AuthenticatorDevice.objects.create(user=sam, name="phone", confirmed=True)

    def refusal(password: str) -> list[str]:
        page = client.post("/admin/login/", {"username": sam.email, "password": password}).content.decode()
        return re.findall(r'<p class="errornote">\s*(.*?)\s*</p>', page, re.S)

    wrong, right_without_code = refusal("a guess"), refusal(STAFF_PASSWORD)
    assert (
        wrong
        == right_without_code
        == ["Please enter the correct email address, password and code for a staff account."]
    )


def test_staff_get_in_with_the_code_on_the_first_login_page(client, sam, settings):
    """The first login page has no device menu (django-otp shows it only after a failed try), so
    a browser posts the code alone: with one device, that must be enough."""
    from django_otp.oath import totp

    settings.ADMIN_REQUIRE_2FA = True
    device = AuthenticatorDevice.objects.create(user=sam, name="phone", confirmed=True)
    assert 'name="otp_device"' not in client.get("/admin/login/").content.decode()
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": sam.email, "password": STAFF_PASSWORD, "otp_token": str(totp(device.bin_key)).zfill(6)},
    )
    assert response.status_code == 302, "Please select a device." in response.content.decode()
    assert client.get("/admin/accounts/user/").status_code == 200


def test_the_history_and_the_delete_confirmation_of_a_customers_record_are_audited(
    client, sam, alice, alice_sender, django_user_model
):
    """Every admin view of customer data is an audit event (privacy policy, section 7): the
    change page was, but not an object's history (Django admin's log of it, naming the
    customer) nor the page asking to confirm a deletion, which lists every record the account
    holds. Found by a privacy review helper."""
    client.force_login(sam)
    history = client.get(f"/admin/senders/sender/{alice_sender.pk}/history/")
    assert history.status_code == 200
    event = AuditEvent.objects.get(action="admin.viewed", actor=sam)
    assert (event.account_id, event.target_id, event.detail) == (alice.pk, alice_sender.public_id, {"page": "history"})

    root = django_user_model.objects.create_superuser("root@3drake.test", STAFF_PASSWORD)
    client.force_login(root)
    confirm = client.get(f"/admin/accounts/user/{alice.pk}/delete/")
    assert confirm.status_code == 200 and alice_sender.from_email in confirm.content.decode()
    event = AuditEvent.objects.get(action="admin.viewed", actor=root)
    assert (event.account_id, event.detail) == (alice.pk, {"page": "delete"})
