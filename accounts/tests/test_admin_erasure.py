"""A superuser erases an account in the admin (its delete page, or the bulk "Delete selected")
as `delete_account` does, whatever the account holds; only who may delete accounts decides.

Found by a review: Django's delete page asked for the delete permission of every related row's
admin, and ApiKeyAdmin, SenderAdmin and MessageAdmin answer no (none of those is deleted alone),
so the page said "Cannot delete user ... your account doesn't have permission to delete the
following types of objects: API key", single or bulk: only an account with no data at all was
erasable in the admin."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from accounts.models import ApiKey
from auditlog.models import AuditEvent
from relay.models import Message
from senders import actions as sender_actions
from senders.models import Sender

STAFF_PASSWORD = "a sturdy staff passphrase"


@pytest.fixture(autouse=True)
def _no_second_factor(settings):
    settings.ADMIN_REQUIRE_2FA = False


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root@3drake.test", STAFF_PASSWORD)


def _with_data(user, make_key):
    make_key(user)
    sender = sender_actions.create_sender(
        user, {"provider": "gmail", "from_email": user.email, "password": "an app password"}
    )
    Message.objects.create(
        user=user, sender=sender, from_email=user.email, expires_at=timezone.now() + timedelta(days=1)
    )


def test_a_superuser_erases_an_account_with_a_key_a_sender_and_messages(
    client, django_user_model, root, alice, make_key
):
    _with_data(alice, make_key)
    client.force_login(root)
    confirm = client.get(f"/admin/accounts/user/{alice.pk}/delete/")
    shown = confirm.content.decode()
    assert "Cannot delete" not in shown, "The admin refuses to erase an account that has a key"
    assert "Are you sure" in shown and "API key" in shown  # What goes with it, listed.
    response = client.post(f"/admin/accounts/user/{alice.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not django_user_model.objects.filter(pk=alice.pk).exists()
    assert not ApiKey.objects.exists() and not Sender.objects.exists() and not Message.objects.exists()
    assert AuditEvent.objects.filter(action="account.deleted", actor=root, detail__via="admin").exists()


def test_a_superuser_erases_selected_accounts_with_data(client, django_user_model, root, alice, charlie, make_key):
    _with_data(alice, make_key)
    _with_data(charlie, make_key)
    client.force_login(root)
    selected = {"action": "delete_selected", "_selected_action": [alice.pk, charlie.pk]}
    assert "Cannot delete" not in client.post("/admin/accounts/user/", selected).content.decode()
    assert client.post("/admin/accounts/user/", {**selected, "post": "yes"}).status_code == 302
    assert not django_user_model.objects.filter(pk__in=[alice.pk, charlie.pk]).exists()
    assert AuditEvent.objects.filter(action="account.deleted", actor=root, detail__via="admin").count() == 2


def test_support_still_deletes_no_account_nor_a_key_alone(client, django_user_model, root, alice, make_key):
    """Who may delete accounts is unchanged (accounts.delete_user: no role has it), and a key
    is still never deleted on its own, even by a superuser (it is revoked)."""
    call_command("setup_roles", stdout=open("/dev/null", "w"))  # noqa: SIM115
    _with_data(alice, make_key)
    sam = django_user_model.objects.create_user("sam@3drake.test", STAFF_PASSWORD, is_staff=True)
    sam.groups.add(Group.objects.get(name="Support"))
    client.force_login(sam)
    assert client.get(f"/admin/accounts/user/{alice.pk}/delete/").status_code == 403
    assert client.post(f"/admin/accounts/user/{alice.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post("/admin/accounts/user/", {"action": "delete_selected", "_selected_action": [alice.pk], "post": "yes"})
    assert django_user_model.objects.filter(pk=alice.pk).exists()
    client.force_login(root)
    key = ApiKey.objects.get(user=alice)
    assert client.get(f"/admin/accounts/apikey/{key.pk}/delete/").status_code == 403
