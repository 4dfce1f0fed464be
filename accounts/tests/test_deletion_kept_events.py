"""Account deletion takes every address the account used out of the audit events it keeps.

Privacy policy 6 (account data deleted or anonymized after account closure) and 10 (delete your
account and associated data). `_erase_email_from_kept_events` rewrote staff's and the system's
kept events without `user.email` only; the account's other addresses stayed in them in clear:
the From address of its sender (2.2: "Sender address"), which staff's `sender.address_unblocked`
event records and staff search the senders list by, and the address it signed in with before an
email change, which staff searched the accounts list by (found by a privacy review).
"""

import re

import pytest
from django.core import mail

from accounts import actions, privacy
from auditlog.models import AuditEvent
from conftest import PASSWORD
from drake.testing.db import tables_mentioning
from senders import actions as sender_actions
from senders.models import AddressBlock

pytestmark = pytest.mark.django_db

SHOP = "alice.shop@example.com"


def test_no_kept_event_holds_the_deleted_accounts_sender_address(client, alice, django_user_model):
    root = django_user_model.objects.create_superuser("root@3drake.test", "a sturdy staff passphrase")
    sender = sender_actions.create_sender(alice, {"provider": "gmail", "from_email": SHOP, "password": "pw"})
    # Support searches the senders list for the address, disables the sender; the customer
    # deletes it (its address stays blocked) and support lifts the block.
    client.force_login(root)
    assert client.get("/admin/senders/sender/", {"q": SHOP}).status_code == 200
    sender_actions.disable_sender(sender, "spam complaints", actor=root)
    sender_actions.delete_sender(sender, actor=alice)
    sender_actions.lift_address_block(AddressBlock.objects.get(), "customer explained", actor=root)

    privacy.delete_account(alice, via="console")

    named = [(e.action, e.detail) for e in AuditEvent.objects.all() if SHOP in str(e.detail)]
    assert named == [], f"kept events still naming the deleted account's sender address: {named}"
    assert tables_mentioning(SHOP) == set()


def test_no_kept_event_holds_the_deleted_accounts_former_login_address(client, alice, django_user_model):
    root = django_user_model.objects.create_superuser("root@3drake.test", "a sturdy staff passphrase")
    client.force_login(root)
    assert client.get("/admin/accounts/user/", {"q": "alice@example.org"}).status_code == 200
    actions.suspend_account(alice, reason="phishing sent as alice@example.org", actor=root)
    client.logout()
    # Later the customer changes the address by the confirmed link, then closes the account.
    client.force_login(alice)
    client.post("/account/", {"new_email": "alice@new.example", "password": PASSWORD})
    link = re.search(r"http://testserver(/account/email/\S+/)", mail.outbox[-1].body).group(1)
    assert client.get(link).status_code == 302
    alice.refresh_from_db()
    assert alice.email == "alice@new.example"

    privacy.delete_account(alice, via="console")

    named = [(e.action, e.detail) for e in AuditEvent.objects.all() if "alice@example.org" in str(e.detail)]
    assert named == [], f"kept events still naming the deleted account's former address: {named}"
    assert tables_mentioning("alice@example.org") == set()


def test_another_accounts_own_events_keep_a_from_address_both_accounts_used(alice, charlie):
    shared = "team@shared.example"
    sender_actions.create_sender(alice, {"provider": "gmail", "from_email": shared, "password": "pw"})
    sender_actions.create_sender(charlie, {"provider": "gmail", "from_email": shared, "password": "pw"})

    privacy.delete_account(alice, via="console")

    connected = AuditEvent.objects.get(action="sender.connected")
    assert connected.account_id == charlie.pk and connected.detail["from_email"] == shared


def test_an_address_that_only_contains_the_deleted_one_is_left_alone(alice, django_user_model):
    """Matched as bare text, erasing alice@example.org rewrote "malice@example.org" and
    "alice@example.org.uk" in other accounts' kept events too. Found by a last-read review."""
    root = django_user_model.objects.create_superuser("root@3drake.test", "a sturdy staff passphrase")
    others = django_user_model.objects.create_user("malice@example.org", PASSWORD)
    reason = "shares a name with malice@example.org and alice@example.org.uk; alice@example.org too"
    actions.suspend_account(others, reason=reason, actor=root)

    privacy.delete_account(alice, via="console")

    kept = AuditEvent.objects.get(action="account.suspended", account_id=others.pk).detail["reason"]
    assert kept == "shares a name with malice@example.org and alice@example.org.uk; [deleted account] too"
