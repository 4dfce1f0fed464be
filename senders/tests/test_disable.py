"""Support disables a sender: a stop only staff lift. alice (the customer) sees it, with the
reason, and nothing she does to the sender (updating it, verifying it) enables it again."""

import pytest

from auditlog.models import AuditEvent
from drake.testing.smtp import SmtpTestServer
from senders import actions
from senders.models import Sender

USER, PASSWORD = "alice@example.org", "right-app-password"


@pytest.fixture
def sam(django_user_model):
    return django_user_model.objects.create_user("sam@3drake.test", "a sturdy staff passphrase", is_staff=True)


@pytest.fixture
def smtp_server(settings, tmp_path):
    server = SmtpTestServer(security="starttls", username=USER, password=PASSWORD)
    server.start()
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_ALLOWED_PORTS = "*"
    settings.SMTP_CA_FILE = server.ca_file
    settings.SMTP_VERIFY_TIMEOUT = 2
    yield server
    server.stop()


@pytest.fixture
def alice_sender(alice, smtp_server):
    """alice's sender, on a server that would accept her login: verifying it would succeed."""
    config = {"provider": "smtp", "from_email": USER, "host": "127.0.0.1", "port": smtp_server.port}
    return actions.create_sender(alice, {**config, "security": "starttls", "password": PASSWORD})


@pytest.fixture
def disabled(alice_sender, sam):
    assert actions.disable_sender(alice_sender, "Phishing reported by recipients", actor=sam)
    return Sender.objects.get(pk=alice_sender.pk)


def test_disabling_sets_the_reason_and_is_audited(alice, alice_sender, sam):
    assert actions.disable_sender(alice_sender, "Phishing reported by recipients", actor=sam)
    sender = Sender.objects.get(pk=alice_sender.pk)
    assert sender.is_disabled and sender.disabled_reason == "Phishing reported by recipients"
    event = AuditEvent.objects.get(action="sender.disabled")
    assert (event.actor, event.actor_is_staff, event.account_id) == (sam, True, alice.pk)
    assert (event.target_id, event.detail) == (sender.public_id, {"reason": "Phishing reported by recipients"})


def test_disabling_twice_changes_nothing(alice_sender, sam):
    assert actions.disable_sender(alice_sender, "first", actor=sam)
    first = Sender.objects.get(pk=alice_sender.pk)
    assert not actions.disable_sender(first, "second", actor=sam)
    again = Sender.objects.get(pk=alice_sender.pk)
    assert (again.disabled_at, again.disabled_reason) == (first.disabled_at, "first")
    assert AuditEvent.objects.filter(action="sender.disabled").count() == 1


def test_enabling_clears_it_and_is_audited(disabled, sam):
    assert actions.enable_sender(disabled, "The customer rotated the app password", actor=sam)
    sender = Sender.objects.get(pk=disabled.pk)
    assert not sender.is_disabled and sender.disabled_reason == ""
    event = AuditEvent.objects.get(action="sender.enabled")
    assert (event.actor, event.detail) == (sam, {"reason": "The customer rotated the app password"})
    assert not actions.enable_sender(sender, "again", actor=sam)
    assert AuditEvent.objects.filter(action="sender.enabled").count() == 1


def test_a_long_reason_is_cut_to_the_field(alice_sender, sam):
    assert actions.disable_sender(alice_sender, "x" * 500, actor=sam)
    assert len(Sender.objects.get(pk=alice_sender.pk).disabled_reason) == 300


def test_the_api_shows_it_disabled_with_the_reason(alice_api, disabled):
    shown = alice_api.get(f"/v1/senders/{disabled.public_id}").json()
    assert (shown["disabled"], shown["disabled_reason"]) == (True, "Phishing reported by recipients")


def test_updating_a_disabled_sender_keeps_it_disabled(alice_api, disabled):
    patched = alice_api.patch(
        f"/v1/senders/{disabled.public_id}", {"from_name": "Alice", "password": "a new app password"}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["disabled"] is True
    sender = Sender.objects.get(pk=disabled.pk)
    assert (sender.disabled_at, sender.disabled_reason) == (disabled.disabled_at, disabled.disabled_reason)
    assert sender.get_password() == "a new app password"


def test_verifying_a_disabled_sender_is_403_and_connects_nowhere(alice_api, disabled, smtp_server):
    response = alice_api.post(f"/v1/senders/{disabled.public_id}/verify")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "type": "permission_denied",
        "message": "This sender is disabled by support: Phishing reported by recipients. Please contact support.",
    }
    assert (smtp_server.max_connections_seen, smtp_server.logins) == (0, 0)
    sender = Sender.objects.get(pk=disabled.pk)
    assert sender.is_disabled and sender.verified_at is None
    assert not AuditEvent.objects.filter(action="sender.verified").exists()


def test_the_console_shows_it_disabled_and_verifying_there_changes_nothing(client, alice, disabled, smtp_server):
    client.force_login(alice)
    page = client.get(f"/senders/{disabled.public_id}/").content.decode()
    assert "This sender is disabled by support: Phishing reported by recipients. Please contact support." in page
    assert "Verify connection" not in page
    listing = client.get("/senders/").content.decode()
    assert '<span class="badge bad">disabled</span>' in listing

    response = client.post(f"/senders/{disabled.public_id}/verify/", follow=True)
    assert "This sender is disabled by support" in response.content.decode()
    assert smtp_server.logins == 0
    assert Sender.objects.get(pk=disabled.pk).is_disabled


def test_new_credentials_in_the_console_keep_it_disabled(client, alice, disabled):
    client.force_login(alice)
    # The whole settings form, as the browser posts it: the server unchanged, a new password.
    form = {
        "from_email": disabled.from_email,
        "host": disabled.host,
        "port": disabled.port,
        "security": disabled.security,
        "username": USER,
    }
    response = client.post(f"/senders/{disabled.public_id}/", {**form, "password": "a new app password"})
    assert response.status_code == 302
    sender = Sender.objects.get(pk=disabled.pk)
    assert sender.is_disabled and sender.get_password() == "a new app password"


def test_enabled_again_it_verifies(alice_api, disabled, sam, smtp_server):
    actions.enable_sender(disabled, "resolved", actor=sam)
    response = alice_api.post(f"/v1/senders/{disabled.public_id}/verify")
    assert response.status_code == 200
    assert smtp_server.logins == 1


def _connect_again(alice_api, from_email=USER):
    return alice_api.post(
        "/v1/senders",
        {"provider": "gmail", "from_email": from_email, "password": "another app password"},
        format="json",
    )


DISABLED_ADDRESS = (
    f"The From address {USER} is disabled by support: Phishing reported by recipients. Please contact support."
)


def test_deleting_a_disabled_sender_does_not_undo_the_disable(alice_api, alice, disabled):
    """Deleting the disabled sender and connecting its address again was a sender like any
    other: the customer undid staff's stop in two requests. The secret still goes with the
    sender (privacy policy: removed when you delete the configuration); the address stays
    blocked on the account until staff lift it."""
    assert alice_api.delete(f"/v1/senders/{disabled.public_id}").status_code == 204
    assert not Sender.objects.filter(pk=disabled.pk).exists()
    for spelling in (USER, USER.upper()):
        refused = _connect_again(alice_api, spelling)
        assert refused.status_code == 403, refused.content
        assert refused.json()["error"]["type"] == "permission_denied"
    assert refused.json()["error"]["message"] == DISABLED_ADDRESS  # The address as it was blocked.
    assert not Sender.objects.filter(user=alice).exists()
    # Another address of hers is not blocked, and may not be moved onto the blocked one.
    other = _connect_again(alice_api, "news@example.org")
    assert other.status_code == 201
    moved = alice_api.patch(f"/v1/senders/{other.json()['id']}", {"from_email": USER}, format="json")
    assert (moved.status_code, moved.json()["error"]["message"]) == (403, DISABLED_ADDRESS)
    assert Sender.objects.get(public_id=other.json()["id"]).from_email == "news@example.org"


def test_a_second_sender_of_a_disabled_address_is_refused(alice_api, disabled):
    """The disabled sender still there, a second one of its From address went around it."""
    refused = _connect_again(alice_api)
    assert (refused.status_code, refused.json()["error"]["message"]) == (403, DISABLED_ADDRESS)
    assert Sender.objects.filter(from_email=USER).count() == 1


def test_moving_a_disabled_sender_to_another_address_does_not_free_its_own(alice_api, disabled):
    """A PATCH of the disabled sender's From address left its own address with no disabled
    sender: a new sender of it was then connected and sent, staff's stop undone in two requests."""
    moved = alice_api.patch(f"/v1/senders/{disabled.public_id}", {"from_email": "news@example.org"}, format="json")
    assert moved.status_code == 403, moved.content
    assert moved.json()["error"]["type"] == "permission_denied"
    assert Sender.objects.get(pk=disabled.pk).from_email == USER
    refused = _connect_again(alice_api)
    assert (refused.status_code, refused.json()["error"]["message"]) == (403, DISABLED_ADDRESS)
    assert Sender.objects.filter(from_email=USER).count() == 1


def test_the_console_says_why_the_address_cannot_be_connected(client, alice, disabled):
    client.force_login(alice)
    assert client.post(f"/senders/{disabled.public_id}/delete/").status_code == 302
    form = {"provider": "gmail", "from_email": USER, "password": "another app password"}
    page = client.post("/senders/new/", form)
    assert page.status_code == 200
    assert DISABLED_ADDRESS in page.content.decode()
    assert not Sender.objects.exists()


def test_support_lifts_the_block_with_a_reason_and_the_address_connects_again(
    client, alice_api, alice, disabled, django_user_model, settings
):
    from django.contrib.auth.models import Group
    from django.core.management import call_command

    from senders.models import AddressBlock

    settings.ADMIN_REQUIRE_2FA = False
    alice_api.delete(f"/v1/senders/{disabled.public_id}")
    block = AddressBlock.objects.get()
    assert (block.user, block.from_email, block.reason) == (alice, USER, "Phishing reported by recipients")
    call_command("setup_roles", stdout=open("/dev/null", "w"))  # noqa: SIM115
    support = django_user_model.objects.create_user("sue@3drake.test", "a sturdy staff passphrase", is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))
    client.force_login(support)
    listing = client.get("/admin/senders/addressblock/").content.decode()
    assert USER in listing and 'value="lift"' in listing
    lift = {"action": "lift", "_selected_action": [block.pk], "apply": "1", "reason": "the customer secured it"}
    assert client.post("/admin/senders/addressblock/", lift).status_code == 302
    assert not AddressBlock.objects.exists()
    event = AuditEvent.objects.get(action="sender.address_unblocked")
    assert (event.actor, event.account_id, event.detail) == (
        support,
        alice.pk,
        {"from_email": USER, "reason": "the customer secured it"},
    )
    assert _connect_again(alice_api).status_code == 201
