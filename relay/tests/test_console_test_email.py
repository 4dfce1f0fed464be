"""The console's "Send a test email" goes through the API's validation and its rules.

For an account whose address has an internationalized domain (the sign-up form takes
jorg@bücher.example) the message was built past relay.validation, so its recipient kept the
Unicode domain that the API's sends are given in IDNA: delivery could not write it as RCPT TO
(no SMTPUTF8) and the log's search could not find it. And a suspended account's button
queued a message, charged to its quota, that then waited. Found by a review helper."""

import pytest

from accounts.actions import create_account
from conftest import PASSWORD
from relay import delivery
from relay.models import Message, Status
from relay.tests.conftest import smtp_sender_fields
from senders import actions as sender_actions


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


@pytest.fixture
def jorg(db):
    return create_account("jorg@bücher.example", PASSWORD, name="Jörg", via="shell")


def test_the_test_email_of_an_account_with_an_internationalized_domain_is_delivered(
    client, jorg, smtp_server, relay_settings
):
    sender = sender_actions.create_sender(jorg, smtp_sender_fields(smtp_server, from_email="jorg@bücher.example"))
    client.force_login(jorg)
    response = client.post(f"/messages/test/{sender.public_id}/")
    message = Message.objects.get(user=jorg)
    assert response["Location"] == f"/messages/{message.public_id}/"
    # Raised UnicodeEncodeError out of the delivery: smtplib writes RCPT TO in ASCII.
    assert delivery.deliver(message.public_id) == "sent"
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert smtp_server.messages[0].rcpt_tos == ["jorg@xn--bcher-kva.example"]


def test_the_test_email_is_logged_as_the_api_logs_a_recipient(client, jorg, smtp_server, relay_settings):
    sender = sender_actions.create_sender(jorg, smtp_sender_fields(smtp_server, from_email="jorg@bücher.example"))
    client.force_login(jorg)
    client.post(f"/messages/test/{sender.public_id}/")
    message = Message.objects.get(user=jorg)
    assert message.to == ["jorg@xn--bcher-kva.example"]
    assert message.public_id in client.get("/messages/", {"recipient": "jorg@bücher.example"}).content.decode()


def test_a_suspended_account_cannot_send_a_test_email(client, alice, alice_sender):
    from accounts.actions import suspend_account

    suspend_account(alice, reason="Abuse reports", actor=None)
    client.force_login(alice)
    response = client.post(f"/messages/test/{alice_sender.public_id}/", follow=True)
    assert "Not sent: This account is suspended. Contact support." in response.content.decode()
    assert not Message.objects.exists()
