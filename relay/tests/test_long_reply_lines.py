"""A reply line longer than smtplib's 8192-byte limit.

smtplib gives up on such a line with `SMTPResponseException(500, "Line too long.")`, a code
the server never sent, after closing the connection. Read as the server's 500 it failed the
message for good: after the final dot a message the server accepted with "250" was recorded
refused, and a "250" to MAIL failed the message at once. The line is now cut where smtplib
stops and its rest dropped (as Postfix's client reads a reply up to its line length limit
and goes on), so the server's code is what counts. A line that never ends within
senders.smtp.LONG_LINE_SKIP is no reply: a transient failure (`connection_failed`, or
`unconfirmed` after the dot), never a 500. A real server's own "500 ..." is unchanged.
"""

import smtplib

import pytest

from drake.testing.loopback import one_connection, smtp_dialogue
from relay import delivery
from relay.models import DeliveryAttempt, Message, Status
from relay.tests.conftest import plain_sender
from senders import smtp

pytestmark = pytest.mark.django_db

HUGE = b"x" * 9000
ENDLESS = b"x" * (smtp.LONG_LINE_SKIP + 2 * 8192)


def _server(stage: bytes, log: list, tail: bytes = HUGE):
    """Answers `stage` (MAIL, or DATA: the reply to the body) with a 250 whose line runs on."""

    def serve(conn, f):
        def answer(command):
            if command == b"MAIL" and stage == b"MAIL":
                return b"250 2.1.0 ok " + tail + b"\r\n"
            if command == b"DATA":
                conn.sendall(b"354 go\r\n")
                while f.readline() not in (b".\r\n", b""):
                    pass
                log.append("queued")
                return b"250 2.0.0 queued as X1 " + (tail if stage == b"DATA" else b"") + b"\r\n"
            return None

        smtp_dialogue(conn, f, answer)

    return one_connection(serve)


def _deliver(send, alice, port: int) -> Message:

    sender = plain_sender(alice, port)
    message_id = send(via=sender).json()["id"]
    delivery.deliver(message_id)
    return Message.objects.get(public_id=message_id)


@pytest.mark.parametrize("stage", [b"DATA", b"MAIL"], ids=["after-the-dot", "mail-from"])
def test_a_huge_250_reply_line_is_a_250(delivering_here, send, alice, relay_settings, stage):
    log: list = []
    with _server(stage, log) as port:
        message = _deliver(send, alice, port)
    # The server said 250 to each: it went, once.
    assert log == ["queued"]
    assert message.status == Status.SENT, f"{message.status}: {message.last_error}"
    assert message.provider_message_id == "X1"


def test_a_reply_line_that_never_ends_after_the_dot_is_unconfirmed(delivering_here, send, alice, relay_settings):
    log: list = []
    with _server(b"DATA", log, ENDLESS) as port:
        message = _deliver(send, alice, port)
    assert log == ["queued"]
    assert message.status == Status.QUEUED
    assert message.last_error == {
        "category": "unconfirmed",
        "smtp_code": None,
        "message": "The server's reply to the message could not be read: it may have been delivered.",
    }
    (attempt,) = DeliveryAttempt.objects.filter(message=message)
    assert (attempt.outcome, attempt.category, attempt.smtp_code) == ("retry", "unconfirmed", None)


def test_a_reply_line_that_never_ends_at_mail_is_retried_not_a_500(delivering_here, send, alice, relay_settings):
    log: list = []
    with _server(b"MAIL", log, ENDLESS) as port:
        message = _deliver(send, alice, port)
    assert log == []
    assert message.status == Status.QUEUED
    assert message.last_error == {
        "category": "connection_failed",
        "smtp_code": None,
        "message": "The server's reply could not be read: Line too long.",
    }


def test_smtplibs_own_500_is_transient_and_a_servers_500_is_not():
    ours = smtp.classify(smtplib.SMTPResponseException(500, "Line too long."))
    assert (ours.category, ours.smtp_code, ours.transient) == ("connection_failed", None, True)
    theirs = smtp.classify(smtplib.SMTPResponseException(500, b"5.5.2 Line too long."))
    assert (theirs.category, theirs.smtp_code, theirs.transient) == ("rejected", 500, False)


def test_a_servers_own_500_to_mail_still_fails_the_message(delivering_here, send, alice, relay_settings):
    def serve(conn, f):
        smtp_dialogue(conn, f, {b"MAIL": b"500 5.5.2 Line too long.\r\n"}.get)

    with one_connection(serve) as port:
        message = _deliver(send, alice, port)
    assert message.status == Status.FAILED
    assert message.last_error == {"category": "message_rejected", "smtp_code": 500, "message": "5.5.2 Line too long."}
