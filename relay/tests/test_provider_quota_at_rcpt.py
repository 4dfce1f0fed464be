"""The provider's daily sending quota, said in reply to RCPT.

relay.delivery recognised the quota reply ("550 5.4.5 Daily user sending limit exceeded",
Microsoft's SubmissionQuotaExceeded) only when it answered MAIL or DATA. Said to every RCPT
(a quota counted per recipient is refused recipient by recipient), it was read as "every
recipient rejected": the message failed for good as `recipient_rejected`, its content wiped,
and so did each next message of the sender, one by one, where the same reply at MAIL pauses
the sender until tomorrow and keeps them all. Found by a delivery review helper (whether
Gmail or Outlook say it at RCPT is not known here: the code now treats it alike wherever).
"""

import pytest

from relay import delivery
from relay.models import Message, Status

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


@pytest.mark.parametrize(
    "text",
    ["5.4.5 Daily user sending limit exceeded", "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"],
)
def test_the_quota_reply_at_rcpt_keeps_the_messages_as_at_mail(send, smtp_server, smtp_sender, settings, text):
    settings.RELAY_MESSAGE_LIFETIME_HOURS = 48
    first, second = (send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(2))
    smtp_server.reject_recipient("r0@example.com", 550, text)
    smtp_server.reject_recipient("r1@example.com", 550, text)
    delivery.deliver(first)
    delivery.deliver(second)
    got = [(m.status, (m.last_error or {}).get("category")) for m in Message.objects.order_by("created_at")]
    # The second finds its sender paused until tomorrow, and waits with it.
    assert got == [(Status.QUEUED, "provider_quota"), (Status.QUEUED, "sender_paused")], got
    assert smtp_sender.__class__.objects.get(pk=smtp_sender.pk).is_paused()


@pytest.mark.parametrize(
    ("code", "text", "status", "category"),
    [
        # Dovecot's and Postfix's answer for a full mailbox, at RCPT on a self-hosted server.
        (452, "4.2.2 Quota exceeded (mailbox for user is full)", Status.QUEUED, "recipient_deferred"),
        (550, "5.2.2 <r0@example.com>: Recipient rejected: Quota exceeded", Status.FAILED, "recipient_rejected"),
    ],
)
def test_a_recipients_full_mailbox_is_not_the_senders_quota(
    send, smtp_server, smtp_sender, settings, code, text, status, category
):
    """A recipient's mailbox over its quota (enhanced status X.2.2) read as the provider's
    daily sending limit: the sender was paused until tomorrow, every message of it waiting,
    for one recipient's full mailbox."""
    settings.RELAY_MESSAGE_LIFETIME_HOURS = 48
    message_id = send(via=smtp_sender, to="r0@example.com").json()["id"]
    smtp_server.reject_recipient("r0@example.com", code, text)
    delivery.deliver(message_id)
    message = Message.objects.get(public_id=message_id)
    assert (message.status, message.last_error["category"]) == (status, category)
    assert not smtp_sender.__class__.objects.get(pk=smtp_sender.pk).is_paused()
