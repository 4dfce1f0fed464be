"""The server takes the whole body, its final dot included, and then the connection ends
(closed, or no reply within the wait) before it answers.

The server may well have queued the message (an MTA commits on the dot, then replies), or
not: nobody can tell. The message is not lost (it is sent again, as Postfix does), but that
attempt is not recorded as a server never reached (`connection_failed`, `timeout`): it is
`unconfirmed`, "it may have been delivered", in the attempt and in the message's
last_error, so the delivery log says why the recipient may find two copies.
"""

import socket
import threading
import time

import pytest
from django.utils import timezone

from relay import delivery
from relay.models import DeliveryAttempt, Message, Status
from relay.outcomes import Outcome
from relay.tests.conftest import plain_sender

pytestmark = pytest.mark.django_db


class ScriptedMta:
    """Plain SMTP on loopback, many connections. On the first connection, after the final dot
    it queues the message and then either closes (`close`) or says nothing (`silence`)."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.queued: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        f = conn.makefile("rb")
        try:
            conn.sendall(b"220 ready\r\n")
            while line := f.readline():
                cmd = line[:4].upper()
                if cmd == b"EHLO":
                    conn.sendall(b"250-hi\r\n250 AUTH PLAIN LOGIN\r\n")
                elif cmd == b"AUTH":
                    conn.sendall(b"235 2.7.0 ok\r\n")
                elif cmd == b"DATA":
                    conn.sendall(b"354 go\r\n")
                    body = b""
                    while (chunk := f.readline()) not in (b".\r\n", b""):
                        body += chunk
                    self.queued.append(body)  # committed on the dot
                    if number == 1:
                        if self.first == "close":
                            conn.close()
                            return
                        self._held.append(conn)  # silence: never answers
                        return
                    conn.sendall(b"250 2.0.0 queued as X%d\r\n" % number)
                elif cmd == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")
        except OSError:
            return

    def close(self) -> None:
        self.listener.close()
        for conn in self._held:
            conn.close()


def _sender(alice, mta: ScriptedMta):

    return plain_sender(alice, mta.port)


@pytest.mark.parametrize("first", ["close", "silence"])
def test_a_body_whose_reply_never_came_is_sent_again_and_recorded_unconfirmed(
    delivering_here, send, alice, relay_settings, first
):
    relay_settings.SMTP_TIMEOUT = 0.5
    mta = ScriptedMta(first)
    try:
        message_id = send(via=_sender(alice, mta)).json()["id"]
        assert delivery.deliver(message_id) == Outcome.RETRY
        assert len(mta.queued) == 1
        # The retry, now rather than after its backoff.
        Message.objects.filter(public_id=message_id).update(next_attempt_at=timezone.now())
        assert delivery.deliver(message_id) == Outcome.SENT
        time.sleep(0.1)
    finally:
        mta.close()
    message = Message.objects.get(public_id=message_id)
    first_attempt, second_attempt = DeliveryAttempt.objects.filter(message=message).order_by("number")
    # Not lost, and the server has two copies: the log says why the recipient may find both.
    assert len(mta.queued) == 2
    assert message.status == Status.SENT
    assert (first_attempt.outcome, first_attempt.category, first_attempt.smtp_code) == ("retry", "unconfirmed", None)
    assert first_attempt.reply.endswith("it may have been delivered.")
    assert second_attempt.outcome == "sent"


@pytest.mark.parametrize(
    ("first", "because"),
    [
        ("close", "The connection was lost after the message was sent, before the server confirmed it"),
        ("silence", "The server did not answer in time after the message was sent"),
    ],
)
def test_while_it_waits_alice_sees_that_it_may_have_been_delivered(
    delivering_here, send, alice, alice_api, relay_settings, first, because
):
    relay_settings.SMTP_TIMEOUT = 0.5
    mta = ScriptedMta(first)
    try:
        message_id = send(via=_sender(alice, mta)).json()["id"]
        delivery.deliver(message_id)
    finally:
        mta.close()
    shown = alice_api.get(f"/v1/messages/{message_id}").json()
    assert shown["status"] == "queued"
    assert shown["last_error"] == {
        "category": "unconfirmed",
        "smtp_code": None,
        "message": f"{because}: it may have been delivered.",
    }
