"""A provider's reply that quotes the subject kept the subject whole.

Privacy policy 2.4: the subject is kept only "in a minimized form, such as length, a hash, or a
redacted preview"; SPEC: "The subject is stored and shown only in the minimized form of the
account's plan". Content filters name what they refuse ("554 5.7.1 Message 'Your sign-in code
is 493817' rejected as spam"), and the reply was kept as it came: in the attempt's record, the
message's last_error (GET /v1/messages/{id}, the console, the export) for the plan's whole
retention window. Found by a privacy review helper; the subject is now taken out of the reply.
"""

import pytest

from drake.testing.db import dump_every_table
from relay import delivery
from relay.models import DeliveryAttempt, Message, Status

pytestmark = pytest.mark.django_db

SUBJECT = "Your sign-in code is 493817"


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


@pytest.mark.parametrize(
    ("code", "status"),
    [(554, Status.FAILED), (451, Status.QUEUED)],
    ids=["rejected", "deferred"],
)
def test_a_reply_quoting_the_subject_does_not_keep_it(send, smtp_server, smtp_sender, alice_api, code, status):
    message_id = send(via=smtp_sender, subject=SUBJECT).json()["id"]
    smtp_server.fail_next("data", code, f"5.7.1 Message '{SUBJECT.upper()}' looks like spam")

    delivery.deliver(message_id)

    message = Message.objects.get(public_id=message_id)
    assert message.status == status
    kept = [
        message.last_error["message"],
        *DeliveryAttempt.objects.filter(message=message).values_list("reply", flat=True),
    ]
    for text in kept:
        assert "493817" not in text, kept
        assert "looks like spam" in text  # What the provider said of it stays.
    assert b"493817" not in dump_every_table()
    assert "493817" not in alice_api.get(f"/v1/messages/{message_id}").content.decode()


def test_a_reply_that_happens_to_share_a_short_subject_stays_whole(send, smtp_server, smtp_sender):
    """A subject of a word or two is no secret a reply could give away, and taking "OK" out of
    every "250 OK" would lose what the server said."""
    message_id = send(via=smtp_sender, subject="OK").json()["id"]
    smtp_server.fail_next("data", 554, "5.7.1 OK then, no")
    delivery.deliver(message_id)
    assert Message.objects.get(public_id=message_id).last_error["message"] == "5.7.1 OK then, no"


def test_a_reply_naming_an_attachment_does_not_keep_its_filename(send, smtp_server, smtp_sender, alice_api):
    """An attachment is content as the body is (privacy policy 3), its name included."""
    attachment = {"filename": "payroll-bonus-2026.xlsx", "content": "eHh4"}
    message_id = send(via=smtp_sender, attachments=[attachment]).json()["id"]
    smtp_server.fail_next("data", 554, "5.7.1 Attachment 'payroll-bonus-2026.xlsx' is blocked by policy")

    delivery.deliver(message_id)

    message = Message.objects.get(public_id=message_id)
    assert message.last_error["message"] == "5.7.1 Attachment '…' is blocked by policy"
    assert b"payroll-bonus" not in dump_every_table()
    assert "payroll-bonus" not in alice_api.get(f"/v1/messages/{message_id}").content.decode()


def test_a_long_reply_quoting_a_long_subject_keeps_none_of_it(send, smtp_server, smtp_sender, alice_api):
    """The reply was cut to its 300 characters before the subject was taken out of it: a
    subject quoted past the cut was no longer found whole, and what came before the cut (most
    of a long subject, up to 998 characters) was kept in clear."""
    subject = ("Your sign-in code is 493817. " + "Please do not share it with anyone at all. " * 7).strip()
    message_id = send(via=smtp_sender, subject=subject).json()["id"]
    smtp_server.fail_next("data", 554, f"5.7.1 Message '{subject}' looks like spam")

    delivery.deliver(message_id)

    message = Message.objects.get(public_id=message_id)
    assert message.status == Status.FAILED
    kept = [
        message.last_error["message"],
        *DeliveryAttempt.objects.filter(message=message).values_list("reply", flat=True),
    ]
    for text in kept:
        assert "493817" not in text and "share it" not in text, kept
        assert text.startswith("5.7.1 Message '…'")
    assert b"493817" not in dump_every_table()
    assert "493817" not in alice_api.get(f"/v1/messages/{message_id}").content.decode()
