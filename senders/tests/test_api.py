"""The senders API: presets, validation in SPEC's envelope, no secret ever returned, 404 across accounts."""

import json

import pytest
from rest_framework.test import APIClient

from auditlog.models import AuditEvent
from senders.models import Sender

SECRET = "app-password-never-shown"


def create(client, **body):
    payload = {"provider": "gmail", "from_email": "alice@example.org", "password": SECRET} | body
    return client.post("/v1/senders", payload, format="json")


def test_a_gmail_sender_gets_the_preset(alice_api):
    response = create(alice_api)
    assert response.status_code == 201
    body = response.json()
    assert body["id"].startswith("snd_")
    assert (body["host"], body["port"], body["security"]) == ("smtp.gmail.com", 587, "starttls")
    assert body["username"] == "alice@example.org"
    assert body["verified"] is False
    assert SECRET not in response.content.decode()
    assert "password" not in body


def test_gmail_may_use_465_with_tls(alice_api):
    body = create(alice_api, port=465).json()
    assert (body["port"], body["security"]) == (465, "tls")


def test_an_outlook_sender_gets_the_microsoft_365_preset(alice_api):
    body = create(alice_api, provider="outlook", username="alice@contoso.example").json()
    assert (body["host"], body["port"], body["security"]) == ("smtp.office365.com", 587, "starttls")
    assert body["username"] == "alice@contoso.example"


def test_a_custom_smtp_sender_needs_host_port_and_security(alice_api):
    response = create(alice_api, provider="smtp", port=587, security="starttls")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request",
        "message": "The SMTP host is required for a custom SMTP sender.",
        "field": "host",
    }
    ok = create(alice_api, provider="smtp", host="smtp.example.com", port=2525, security="tls")
    assert ok.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provider": "yahoo"}, "provider"),
        ({"from_email": "not-an-email"}, "from_email"),
        ({"password": ""}, "password"),
        ({"provider": "smtp", "host": "smtp.example.com", "port": 22, "security": "tls"}, "port"),
        ({"provider": "smtp", "host": "127.0.0.1", "port": 587, "security": "tls"}, "host"),
        ({"provider": "smtp", "host": "http://smtp.example.com/", "port": 587, "security": "tls"}, "host"),
        ({"provider": "smtp", "host": "smtp.example.com", "port": 587, "security": "none"}, "security"),
        ({"provider": "gmail", "host": "smtp.evil.example"}, "host"),
        ({"provider": "outlook", "port": 465}, "port"),
        ({"from_name": "Alice\r\nBcc: victim@example.org"}, "from_name"),
        # Taken, such a name had every message of the sender fail content_invalid (the email package
        # decodes the encoded word into a line break): refused as a display name of /v1/send is.
        ({"from_name": "=?utf-8?q?a=0D=0AX-Evil=3A1?="}, "from_name"),
        ({"from_name": "=?utf-8?q?a=40b.com=2C_x?="}, "from_name"),
        # SMTP login (smtplib's PLAIN, LOGIN and CRAM-MD5) carries ASCII only: taken, such a
        # sender never logged in, and every message through it waited out its lifetime.
        ({"password": "pässwörd"}, "password"),
        ({"username": "jürgen@example.org"}, "username"),
    ],
)
def test_bad_input_is_refused_naming_the_field(alice_api, body, field):
    response = create(alice_api, **body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["field"] == field
    assert not Sender.objects.exists()


def test_a_domain_with_an_idna_deviation_is_kept_as_that_domain(alice_api):
    """IDNA 2003 (Python's codec) maps ß to "ss": a sender of straße.example sent as
    strasse.example, and an SMTP host smtp.straße.example was dialled as smtp.strasse.example,
    another owner's server, which got the login."""
    sender = create(alice_api, from_email="kontakt@straße.example").json()
    assert sender["from_email"] == "kontakt@xn--strae-oqa.example"
    smtp = create(alice_api, provider="smtp", host="smtp.straße.example", port=587, security="starttls").json()
    assert smtp["host"] == "smtp.xn--strae-oqa.example"


def test_a_from_name_with_a_literal_equals_question_mark_is_no_encoded_word(alice_api):
    assert create(alice_api, from_name="2+2=? Team").json()["from_name"] == "2+2=? Team"


def test_malformed_json_is_refused(alice_api):
    response = alice_api.post("/v1/senders", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


def test_list_get_patch_delete(alice_api, alice):
    sender_id = create(alice_api).json()["id"]
    listing = alice_api.get("/v1/senders").json()
    assert [s["id"] for s in listing["data"]] == [sender_id]

    assert alice_api.get(f"/v1/senders/{sender_id}").json()["from_email"] == "alice@example.org"

    patched = alice_api.patch(
        f"/v1/senders/{sender_id}", {"from_name": "Alice Co", "password": "new-secret"}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["from_name"] == "Alice Co"
    assert Sender.objects.get(public_id=sender_id).get_password() == "new-secret"

    assert alice_api.delete(f"/v1/senders/{sender_id}").status_code == 204
    assert not Sender.objects.filter(public_id=sender_id).exists()
    assert alice_api.get(f"/v1/senders/{sender_id}").status_code == 404
    actions = list(
        AuditEvent.objects.filter(account_id=alice.pk, action__startswith="sender.").values_list("action", flat=True)
    )
    assert sorted(actions) == ["sender.connected", "sender.deleted", "sender.updated"]


def test_a_patch_may_repeat_the_provider_but_not_change_it(alice_api):
    """It used to drop `provider` silently: a client asking for another provider got a 200."""
    sender_id = create(alice_api).json()["id"]
    changed = alice_api.patch(f"/v1/senders/{sender_id}", {"provider": "outlook", "from_name": "X"}, format="json")
    assert changed.status_code == 400
    assert changed.json()["error"] == {
        "type": "invalid_request",
        "message": "The provider cannot be changed (this sender is gmail): connect a new sender instead.",
        "field": "provider",
    }
    assert Sender.objects.get(public_id=sender_id).from_name == ""
    repeated = alice_api.patch(f"/v1/senders/{sender_id}", {"provider": "gmail", "from_name": "X"}, format="json")
    assert repeated.status_code == 200
    assert repeated.json()["from_name"] == "X"


def test_an_unknown_field_is_refused_not_dropped(alice_api):
    """Before, a typo was dropped: the sender was created (201) without the setting."""
    typo = create(alice_api, provider="smtp", host="smtp.example.com", port=2525, security="tls", from_nmae="Alice")
    assert typo.status_code == 400
    assert typo.json()["error"] == {
        "type": "invalid_request",
        "message": "Unknown field 'from_nmae'.",
        "field": "from_nmae",
    }
    assert not Sender.objects.exists()

    sender = create(alice_api).json()
    patched = alice_api.patch(f"/v1/senders/{sender['id']}", {"sercurity": "tls"}, format="json")
    assert patched.status_code == 400
    assert patched.json()["error"]["field"] == "sercurity"
    # The sender as the API shows it, sent back whole with one change: what is only shown is ignored.
    whole = {**sender, "from_name": "Alice Co", "password": "new-secret"}
    resent = alice_api.patch(f"/v1/senders/{sender['id']}", whole, format="json")
    assert resent.status_code == 200
    assert resent.json()["from_name"] == "Alice Co"


def test_a_patch_refuses_a_password_smtp_login_cannot_carry(alice_api):
    sender = create(alice_api).json()
    response = alice_api.patch(f"/v1/senders/{sender['id']}", {"password": "pässwörd"}, format="json")
    assert (response.status_code, response.json()["error"]["field"]) == (400, "password")
    assert Sender.objects.get(public_id=sender["id"]).get_password() == SECRET


def test_changing_credentials_unverifies(alice_api):
    sender_id = create(alice_api).json()["id"]
    Sender.objects.filter(public_id=sender_id).update(verified_at="2026-11-01T00:00:00Z")
    assert alice_api.patch(f"/v1/senders/{sender_id}", {"from_name": "X"}, format="json").json()["verified"] is True
    assert alice_api.patch(f"/v1/senders/{sender_id}", {"password": "other"}, format="json").json()["verified"] is False


def test_charlies_sender_is_404_on_every_endpoint(alice_api, charlie, make_key):
    charlie_api = APIClient()
    charlie_api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(charlie)}")
    sender_id = create(charlie_api, from_email="charlie@example.net").json()["id"]
    for method, path in [
        ("get", f"/v1/senders/{sender_id}"),
        ("patch", f"/v1/senders/{sender_id}"),
        ("delete", f"/v1/senders/{sender_id}"),
        ("post", f"/v1/senders/{sender_id}/verify"),
    ]:
        response = getattr(alice_api, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["type"] == "not_found"
    assert alice_api.get("/v1/senders").json()["data"] == []
    assert Sender.objects.filter(public_id=sender_id).exists()


def test_no_response_or_audit_event_carries_the_secret(alice_api):
    responses = [create(alice_api)]
    sender_id = responses[0].json()["id"]
    responses.append(alice_api.get("/v1/senders"))
    responses.append(alice_api.get(f"/v1/senders/{sender_id}"))
    for response in responses:
        assert SECRET not in response.content.decode()
    assert SECRET not in json.dumps(list(AuditEvent.objects.values()), default=str)
