"""The sender page's settings form: alice moves her custom SMTP sender to another server (host,
port, security) without deleting it, so its id, which her code sends with, stays the same.

The form goes through senders.actions.update_sender, the API's PATCH: the same rules (the host
guard, SMTP_ALLOWED_PORTS, senders.validation), the same consequences (verify again, a pause
lifted, a disabled sender left disabled) and the same audit event.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from auditlog.models import AuditEvent
from senders import actions
from senders.models import AddressBlock, Sender

SECRET = "stored-smtp-password-7Hq"


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def smtp_sender(alice):
    """alice's custom SMTP sender, verified on its first server."""
    sender = actions.create_sender(
        alice,
        {
            "provider": "smtp",
            "from_email": "alice@example.org",
            "username": "alice",
            "host": "smtp.old-host.example",
            "port": 587,
            "security": "starttls",
            "password": SECRET,
        },
    )
    Sender.objects.filter(pk=sender.pk).update(verified_at=timezone.now())
    return Sender.objects.get(pk=sender.pk)


@pytest.fixture
def gmail_sender(alice):
    sender = actions.create_sender(alice, {"provider": "gmail", "from_email": "alice@example.org", "password": SECRET})
    Sender.objects.filter(pk=sender.pk).update(verified_at=timezone.now())
    return Sender.objects.get(pk=sender.pk)


def _form(**changes: object) -> dict[str, object]:
    """What the browser posts for alice's SMTP sender: every field, the password left empty."""
    return {
        "from_email": "alice@example.org",
        "from_name": "",
        "host": "smtp.old-host.example",
        "port": 587,
        "security": "starttls",
        "username": "alice",
        "password": "",
        **changes,
    }


def _updates() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="sender.updated"))


def test_the_page_offers_an_smtp_senders_server_filled_in(signed_in, smtp_sender):
    page = signed_in.get(f"/senders/{smtp_sender.public_id}/").content.decode()
    assert 'name="host" value="smtp.old-host.example"' in page
    assert 'name="port" value="587"' in page
    assert '<option value="starttls" selected>' in page
    # Write-only: the stored password is never put back into the page.
    assert SECRET not in page
    assert 'name="password"' in page and 'type="password"' in page


def test_alice_moves_her_sender_to_another_server(signed_in, alice, smtp_sender):
    response = signed_in.post(
        f"/senders/{smtp_sender.public_id}/", _form(host="mail.new-host.example", port=465, security="tls")
    )
    assert response.status_code == 302
    assert response["Location"] == f"/senders/{smtp_sender.public_id}/"

    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert (sender.public_id, sender.host, sender.port, sender.security) == (
        smtp_sender.public_id,
        "mail.new-host.example",
        465,
        "tls",
    )
    # The old verification proves nothing about the new server.
    assert sender.verified_at is None
    # An empty password field keeps the stored password.
    assert sender.get_password() == SECRET

    [event] = _updates()
    assert (event.actor, event.account_id, event.target_id) == (alice, alice.pk, smtp_sender.public_id)
    assert event.detail == {"fields": ["host", "port", "security"], "via": "console"}

    page = signed_in.get(response["Location"]).content.decode()
    assert "mail.new-host.example:465 (tls)" in page
    assert '<span class="badge neutral">not verified</span>' in page
    assert "Verify the sender again" in page


def test_a_new_password_is_stored_and_never_shown(signed_in, smtp_sender):
    response = signed_in.post(f"/senders/{smtp_sender.public_id}/", _form(password="the new server's password"))
    assert response.status_code == 302
    assert Sender.objects.get(pk=smtp_sender.pk).get_password() == "the new server's password"
    assert _updates()[0].detail == {"fields": ["password"], "via": "console"}
    assert "the new server's password" not in signed_in.get(response["Location"]).content.decode()


def test_saving_the_form_unchanged_changes_nothing(signed_in, smtp_sender):
    assert signed_in.post(f"/senders/{smtp_sender.public_id}/", _form()).status_code == 302
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert sender.verified_at == smtp_sender.verified_at
    assert _updates() == []


def test_new_settings_lift_a_pause_as_the_api_does(signed_in, smtp_sender):
    assert actions.pause_sender(smtp_sender, "The provider refused the login (535).")
    signed_in.post(f"/senders/{smtp_sender.public_id}/", _form(host="mail.new-host.example"))
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert (sender.host, sender.paused_at, sender.paused_reason) == ("mail.new-host.example", None, "")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"port": 8025}, "port", "Port 8025 is not allowed for SMTP (allowed: 25, 465, 587, 2525)."),
        ({"host": "10.0.0.5"}, "host", "This address is private, loopback or reserved"),
        ({"host": "127.0.0.1"}, "host", "This address is private, loopback or reserved"),
        ({"host": ""}, "host", "The SMTP host is required for a custom SMTP sender."),
        ({"host": "smtp://mail.new-host.example:25"}, "host", "This is not a valid host name"),
        ({"port": ""}, "port", "The port is required for a custom SMTP sender."),
        ({"security": "none"}, "security", "A password is never sent without TLS to a public server"),
    ],
)
def test_bad_settings_are_refused_at_their_field(signed_in, smtp_sender, changes, field, message):
    response = signed_in.post(f"/senders/{smtp_sender.public_id}/", _form(password="typed but refused", **changes))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'id="id_{field}_error"' in page
    assert message in page
    # Nothing saved, nothing audited, and the password typed is not echoed back.
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert (sender.host, sender.port, sender.security, sender.verified_at) == (
        "smtp.old-host.example",
        587,
        "starttls",
        smtp_sender.verified_at,
    )
    assert sender.get_password() == SECRET
    assert _updates() == []
    assert "typed but refused" not in page


@pytest.mark.parametrize(
    "changes",
    [{"port": 8025}, {"host": "10.0.0.5"}, {"host": ""}, {"security": "none"}],
)
def test_the_console_refuses_what_the_api_refuses_in_the_same_words(signed_in, alice_api, smtp_sender, changes):
    """One rule set: the form's error is the API PATCH's error, field and message."""
    api_error = alice_api.patch(f"/v1/senders/{smtp_sender.public_id}", changes, format="json").json()["error"]
    response = signed_in.post(f"/senders/{smtp_sender.public_id}/", _form(**changes))
    assert response.context["form"].errors == {api_error["field"]: [api_error["message"]]}


def test_a_private_host_is_allowed_where_private_hosts_are(signed_in, smtp_sender, settings):
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    response = signed_in.post(f"/senders/{smtp_sender.public_id}/", _form(host="10.0.0.5", security="none"))
    assert response.status_code == 302
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert (sender.host, sender.security) == ("10.0.0.5", "none")


def test_a_port_allowed_by_the_setting_is_accepted(signed_in, smtp_sender, settings):
    settings.SMTP_ALLOWED_PORTS = "587,8025"
    assert signed_in.post(f"/senders/{smtp_sender.public_id}/", _form(port=8025)).status_code == 302
    assert Sender.objects.get(pk=smtp_sender.pk).port == 8025


def test_a_gmail_senders_server_is_its_preset_and_not_offered(signed_in, gmail_sender):
    page = signed_in.get(f"/senders/{gmail_sender.public_id}/").content.decode()
    assert 'name="host"' not in page
    assert 'name="port"' not in page
    assert 'name="security"' not in page
    assert "set by its provider and cannot be changed" in page


def test_a_gmail_senders_host_cannot_be_changed_even_if_posted(signed_in, gmail_sender):
    response = signed_in.post(
        f"/senders/{gmail_sender.public_id}/",
        {
            "from_email": "alice@example.org",
            "host": "smtp.attacker.example",
            "port": 25,
            "security": "tls",
            "username": "",
            "password": "",
        },
    )
    assert response.status_code == 302
    sender = Sender.objects.get(pk=gmail_sender.pk)
    assert (sender.host, sender.port, sender.security) == ("smtp.gmail.com", 587, "starttls")
    assert sender.verified_at == gmail_sender.verified_at
    assert _updates() == []


def test_a_gmail_sender_still_takes_a_new_app_password(signed_in, gmail_sender):
    form = {"from_email": "alice@example.org", "username": "", "password": "abcd efgh ijkl"}
    response = signed_in.post(f"/senders/{gmail_sender.public_id}/", form)
    assert response.status_code == 302
    sender = Sender.objects.get(pk=gmail_sender.pk)
    assert (sender.get_password(), sender.verified_at) == ("abcd efgh ijkl", None)


def test_charlie_gets_404_for_alices_sender_and_changes_nothing(client, charlie, smtp_sender):
    client.force_login(charlie)
    response = client.post(f"/senders/{smtp_sender.public_id}/", _form(host="mail.charlie.example"))
    assert response.status_code == 404
    assert Sender.objects.get(pk=smtp_sender.pk).host == "smtp.old-host.example"
    assert _updates() == []


def test_a_disabled_sender_stays_disabled_whatever_is_edited(signed_in, smtp_sender, django_user_model):
    sam = django_user_model.objects.create_user("sam@3drake.test", "a sturdy staff passphrase", is_staff=True)
    assert actions.disable_sender(smtp_sender, "Phishing reported by recipients", actor=sam)
    disabled = Sender.objects.get(pk=smtp_sender.pk)

    response = signed_in.post(
        f"/senders/{smtp_sender.public_id}/",
        _form(host="mail.new-host.example", port=465, security="tls", password="another password"),
        follow=True,
    )
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert (sender.host, sender.port, sender.security) == ("mail.new-host.example", 465, "tls")
    assert (sender.disabled_at, sender.disabled_reason) == (disabled.disabled_at, "Phishing reported by recipients")
    page = response.content.decode()
    assert '<span class="badge bad">disabled</span>' in page
    assert "stays disabled" in page
    assert "Verify connection" not in page


def test_alice_renames_her_sender_and_changes_its_from_address(signed_in, alice, smtp_sender):
    """The API's PATCH changed them; the page did not offer them."""
    response = signed_in.post(
        f"/senders/{smtp_sender.public_id}/", _form(from_email="support@example.org", from_name="Acme Support")
    )
    assert response.status_code == 302
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert (sender.from_email, sender.from_name) == ("support@example.org", "Acme Support")
    assert sender.verified_at is None  # The provider may not let alice send as that address.
    assert _updates()[0].detail == {"fields": ["from_email", "from_name"], "via": "console"}


def test_new_settings_clear_what_the_last_verify_said_of_the_old_ones(signed_in, smtp_sender):
    """After a failed verify, the page went on showing the old server's error, and the badge
    "verification failed", once the server was changed."""
    Sender.objects.filter(pk=smtp_sender.pk).update(
        verified_at=None, last_verify_error={"category": "connection_failed", "smtp_code": None, "message": "Refused"}
    )
    signed_in.post(f"/senders/{smtp_sender.public_id}/", _form(host="mail.new-host.example"))
    sender = Sender.objects.get(pk=smtp_sender.pk)
    assert sender.last_verify_error == {}
    page = signed_in.get(f"/senders/{smtp_sender.public_id}/").content.decode()
    assert "Refused" not in page and "not verified" in page
    assert _updates()[0].detail["fields"] == ["host"]


def test_a_refused_from_address_leaves_the_page_showing_the_sender_as_it_is(signed_in, alice, smtp_sender):
    """Moving onto an address staff blocked is refused at its field; the page around the form
    went on to show the refused address and server as the sender's own, and the sender as
    unverified, while nothing had been saved."""
    AddressBlock.objects.create(
        user=alice, from_email="blocked@example.org", reason="Phishing", disabled_at=timezone.now()
    )
    response = signed_in.post(
        f"/senders/{smtp_sender.public_id}/", _form(from_email="blocked@example.org", host="mail.new-host.example")
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "The From address blocked@example.org" in page  # The refusal, at its field.
    assert "<h1>alice@example.org" in page
    assert "smtp.old-host.example:587" in page and "mail.new-host.example:" not in page
    assert "not yet" not in page  # Still verified: nothing changed.
    assert Sender.objects.get(pk=smtp_sender.pk).from_email == "alice@example.org"
