"""A recipient the server refused only for now (4xx at RCPT) while it accepted the others.

RFC 5321 says a 4xx to RCPT is a temporary failure for that recipient (greylisting, a full
mailbox, "too many recipients" 452), and 4.5.3.1.10 asks clients to treat a 552 "too many
recipients" as a 452 too: the client sends the message to the accepted ones and tries the
others again later. 3drake did mark the message `sent`, delete its content, and record the
deferred recipient only as a count: that recipient never got the message, though the server
only said "later" (a review's finding, the first test). Now the message waits for them, with
its content, and each recipient gets it once (relay.refusals).
"""

import pytest
from django.utils import timezone

from relay import delivery
from relay.models import Message, OutboxContent, Status

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (450, "4.2.0 Greylisted, please try again later"),
        (452, "4.5.3 Too many recipients"),
        (552, "5.5.3 Too many recipients"),  # RFC 5321 4.5.3.1.10: treat as 452
    ],
)
def test_a_recipient_deferred_at_rcpt_is_tried_again(send, smtp_server, smtp_sender, code, text):
    message_id = send(via=smtp_sender, to=["bob@example.com", "carol@example.com"]).json()["id"]
    smtp_server.reject_recipient("carol@example.com", code, text)

    delivery.deliver(message_id)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["bob@example.com"]]

    # The server would take carol now; her copy is due whenever the relay schedules it.
    with smtp_server._lock:
        smtp_server._refused.clear()
    message = Message.objects.get(public_id=message_id)
    if message.status == Status.QUEUED:
        Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        delivery.deliver(message_id)
    message = Message.objects.get(public_id=message_id)
    got = [rcpt for m in smtp_server.messages for rcpt in m.rcpt_tos]
    assert "carol@example.com" in got, (
        f"carol was only deferred ({code}) but never got the message: status={message.status}, "
        f"refused={message.refused_recipients}, content kept={OutboxContent.objects.filter(message=message).exists()}"
    )
    assert got.count("bob@example.com") == 1  # and bob only once
