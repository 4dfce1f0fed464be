"""Account deletion and Django admin's log of objects gone before the account.

Privacy policy 6 (account data deleted or anonymized after account closure) and 10 (delete your
account and associated data). `_delete_admin_log_entries` found the admin log of the account's
objects only through the objects still there and through staff's `admin.deleted` events: a
sender the customer deleted themselves after staff saved it in the admin was neither, and its
entry ("alice@example.org via smtp.gmail.com") outlived the account (found by a privacy review).
"""

import pytest
from django.contrib.admin.models import LogEntry

from accounts import privacy
from senders import actions as sender_actions

pytestmark = pytest.mark.django_db

FROM = "alice@example.org"  # the account's own address


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root@3drake.test", "a sturdy staff passphrase")


def _saved_in_the_admin(client, root, sender) -> None:
    client.force_login(root)
    # Support opens the sender and saves it (every field read-only: "No fields changed.").
    assert client.post(f"/admin/senders/sender/{sender.pk}/change/", {}).status_code == 302


def test_no_admin_log_entry_names_a_sender_the_customer_deleted_before_closing(client, alice, root):
    sender = sender_actions.create_sender(alice, {"provider": "gmail", "from_email": FROM, "password": "pw"})
    _saved_in_the_admin(client, root, sender)
    assert LogEntry.objects.filter(object_repr__icontains=FROM).exists()

    # The customer disconnects the sender, then closes the account.
    sender_actions.delete_sender(sender, actor=alice, via="api")
    privacy.delete_account(alice, via="console")

    left = list(LogEntry.objects.filter(object_repr__icontains=FROM).values_list("object_repr", flat=True))
    assert left == [], f"admin log entries still naming the deleted account's sender: {left}"


def test_another_accounts_sender_of_the_same_address_keeps_its_admin_log(client, alice, charlie, root):
    shared = "team@shared.example"
    alices = sender_actions.create_sender(alice, {"provider": "gmail", "from_email": shared, "password": "pw"})
    charlies = sender_actions.create_sender(charlie, {"provider": "gmail", "from_email": shared, "password": "pw"})
    _saved_in_the_admin(client, root, alices)
    _saved_in_the_admin(client, root, charlies)
    sender_actions.delete_sender(alices, actor=alice, via="api")

    privacy.delete_account(alice, via="console")

    assert list(LogEntry.objects.values_list("object_id", flat=True)) == [str(charlies.pk)]
