"""Addresses whose local part is not ASCII: refused at the door, and failed with a reason at
delivery if one was accepted before.

Django's validate_email checks the local part with `[A-Z]` under re.IGNORECASE, which in a
Unicode pattern also matches "ſ" (U+017F), "ı" (U+0131) and the Kelvin sign "K" (U+212A), and
relay.validation converted only the domain to ASCII: "boſ@example.com" got a 202. At delivery
smtplib writes each command in ASCII (no SMTPUTF8): the UnicodeEncodeError flew out of the
task, the message stayed `sending`, and each lease handed it to a worker again until its
lifetime ended. Found by a delivery review helper.
"""

import pytest

from relay import delivery
from relay.models import Message, Status

pytestmark = pytest.mark.django_db

FOLDING = ["bo\u017f@example.com", "b\u0131ll@example.com", "\u212aim@example.com"]
NOT_ASCII = "The part before the @ must be ASCII letters, digits and punctuation (3drake sends without SMTPUTF8)."


@pytest.mark.parametrize("address", FOLDING)
def test_a_non_ascii_local_part_is_a_400_naming_the_field(send, smtp_sender, address):
    for field in ("to", "cc", "bcc"):
        response = send(via=smtp_sender, **{field: [address] if field != "to" else address})
        assert response.status_code == 400, response.content
        assert response.json()["error"]["field"] == (f"{field}[0]" if field != "to" else "to[0]")
        assert response.json()["error"]["message"] == NOT_ASCII
    assert not Message.objects.exists()


@pytest.mark.parametrize("address", FOLDING)
def test_a_sender_with_a_non_ascii_local_part_is_refused(alice_api, address):
    body = {"provider": "gmail", "from_email": address, "password": "app-pw"}
    response = alice_api.post("/v1/senders", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request", "message": NOT_ASCII, "field": "from_email"}


def test_one_accepted_before_fails_with_a_reason_instead_of_breaking_its_task(
    delivering_here, send, smtp_server, smtp_sender, monkeypatch
):
    from relay import validation

    with monkeypatch.context() as before_the_fix:  # Validation as it was: the domain alone.
        before_the_fix.setattr(validation, "wire_address", validation.with_ascii_domain)
        response = send(via=smtp_sender, to="bo\u017f@example.com")
    assert response.status_code == 202
    message = Message.objects.get(public_id=response.json()["id"])
    assert delivery.deliver(message.public_id) == "failed"
    message.refresh_from_db()
    assert message.status == Status.FAILED
    assert message.last_error["category"] == "message_rejected"
    assert "not ASCII" in message.last_error["message"]
    assert smtp_server.messages == []
