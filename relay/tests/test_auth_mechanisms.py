"""A server whose AUTH offers no mechanism smtplib speaks (NTLM/GSSAPI-only Exchange, an
XOAUTH2-only provider), or that offers no AUTH at all, while the sender has a password: a
login the server cannot take, the sender's problem (auth_failed: pause it, keep the messages).

smtplib raises a bare `SMTPException("No suitable authentication method found.")` for the
first, and SMTPException is an OSError: senders.smtp classified it as a network error
(`connection_failed`, "Could not connect: SMTPException.", transient), so verify said the
server could not be reached, and every message was retried for its whole lifetime, then
ended `expired`, the sender never paused. The second was `tls_failed`, permanent: every
queued message failed one by one. Found by a delivery review helper."""

import pytest

from drake.testing.loopback import one_connection, smtp_dialogue
from relay import delivery
from relay.models import Message, Status
from relay.tests.conftest import plain_sender
from senders import smtp
from senders.models import Sender

pytestmark = pytest.mark.django_db


def _server(auth_line: bytes):
    def serve(conn, f):
        refused = b"504 5.5.4 Unrecognized authentication type\r\n"
        answers = {b"AUTH": refused}
        smtp_dialogue(conn, f, answers.get, ehlo=b"250-hi\r\n" + auth_line + b"250 8BITMIME\r\n")

    return one_connection(serve)


NO_COMMON_MECHANISM = b"250-AUTH NTLM GSSAPI XOAUTH2\r\n"


def test_no_common_auth_mechanism_is_an_smtp_failure(relay_settings):
    with _server(NO_COMMON_MECHANISM) as port, pytest.raises(smtp.SmtpFailure) as failure:
        smtp.open_connection(host="127.0.0.1", port=port, security="none", username="u", password="p", timeout=2)
    assert failure.value.category == "auth_failed"


@pytest.fixture
def raw_sender(alice, relay_settings):
    def make(port):
        return plain_sender(alice, port)

    return make


@pytest.mark.parametrize("auth_line", [NO_COMMON_MECHANISM, b""], ids=["no-common-mechanism", "no-auth-offered"])
def test_a_login_the_server_cannot_take_pauses_the_sender_and_keeps_the_message(
    delivering_here, send, raw_sender, auth_line
):
    with _server(auth_line) as port:
        sender = raw_sender(port)
        message_id = send(via=sender).json()["id"]
        try:
            outcome = delivery.deliver(message_id)
        except Exception as exc:  # noqa: BLE001
            message = Message.objects.get(public_id=message_id)
            pytest.fail(f"deliver raised {type(exc).__name__}: {exc}; the message is left {message.status}")
    message = Message.objects.get(public_id=message_id)
    assert (outcome, message.status) == ("deferred", Status.QUEUED), message.last_error
    assert message.last_error["category"] == "auth_failed"
    assert Sender.objects.get(pk=sender.pk).is_paused()
