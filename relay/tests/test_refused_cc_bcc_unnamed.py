"""A Bcc (or Cc) recipient's address was kept when the server deferred it at RCPT.

Privacy policy 2.4 lists what is kept of a relayed message: From and To addresses, a minimized
subject, status, provider response codes, identifiers; relay.models keeps Cc and Bcc as counts
only ("Bcc addresses are nobody's business"). When the server takes the To recipients and
defers another (a 4xx at RCPT: greylisting, a full mailbox), relay.delivery kept that
recipient's reply whole as the attempt's reply and the message's last_error, and servers
name the recipient they defer (Postfix: "450 4.2.0 <x@y>: Recipient address rejected:
Greylisted"). The Bcc address was then in the database, in GET /v1/messages/{id} (to the
customer's whole team of API clients) and, after the message ends, in its log for the plan's
retention. (A recipient refused for good, 5xx, is kept as a count only, as it should be.)
Found by a privacy review helper; the reply is now kept with the address taken out.
"""

import pytest

from drake.testing.db import dump_every_table
from relay import delivery
from relay.models import DeliveryAttempt, Message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


@pytest.mark.parametrize("field", ["bcc", "cc"])
def test_a_deferred_bcc_or_cc_recipients_address_is_not_kept(send, smtp_server, smtp_sender, alice_api, field):
    hidden = f"hidden.{field}@example.com"
    message_id = send(via=smtp_sender, to=["bob@example.com"], **{field: [hidden]}).json()["id"]
    smtp_server.reject_recipient(hidden, 450, f"4.2.0 <{hidden}>: Recipient address rejected: Greylisted")

    delivery.deliver(message_id)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["bob@example.com"]]

    message = Message.objects.get(public_id=message_id)
    assert getattr(message, f"{field}_count") == 1
    kept = {
        "last_error": message.last_error,
        "attempts": list(DeliveryAttempt.objects.filter(message=message).values_list("reply", flat=True)),
    }
    assert hidden not in repr(kept), f"the {field} address is kept: {kept}"
    assert hidden.encode() not in dump_every_table()
    assert hidden not in alice_api.get(f"/v1/messages/{message_id}").content.decode()
    assert "<…>: Recipient address rejected: Greylisted" in message.last_error["message"]


def test_a_to_recipients_own_refusal_still_names_it(send, smtp_server, smtp_sender):
    """To addresses are kept: their replies stay whole, the address included."""
    message_id = send(via=smtp_sender, to=["bob@example.com", "carol@example.com"]).json()["id"]
    smtp_server.reject_recipient("carol@example.com", 450, "4.2.0 <carol@example.com>: Greylisted")
    delivery.deliver(message_id)
    assert "<carol@example.com>" in Message.objects.get(public_id=message_id).last_error["message"]


def test_a_421_to_a_bcc_recipient_that_ends_the_session_does_not_keep_its_address(
    send, smtp_server, smtp_sender, alice_api
):
    """A 421 to RCPT stops the session (the provider's "slow down"): the reply went into the
    sender's pause reason and last_error whole, past the redaction of the other refusals.
    Found by a last-read review helper."""
    hidden = "hidden.bcc@example.com"
    message_id = send(via=smtp_sender, to=["bob@example.com"], bcc=[hidden]).json()["id"]
    smtp_server.reject_recipient(hidden, 421, f"4.7.0 <{hidden}>: Try again later", hang_up=True)
    delivery.deliver(message_id)
    assert smtp_server.messages == []
    assert hidden.encode() not in dump_every_table()
    assert hidden not in alice_api.get(f"/v1/messages/{message_id}").content.decode()
