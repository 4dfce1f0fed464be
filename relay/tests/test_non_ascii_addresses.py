"""An address whose local part is not ASCII slips through validation and poisons its delivery.

Django's validate_email checks the local part with `[A-Z]` under re.IGNORECASE, which in a
Unicode pattern also matches "ſ" (U+017F), "ı" (U+0131) and the Kelvin sign "K" (U+212A).
relay.validation converts only the domain to ASCII, so "boſ@example.com" is accepted with a
202. At delivery smtplib encodes each command as ASCII (no SMTPUTF8): the UnicodeEncodeError
is neither an SMTPException nor an OSError, so it flies out of transport.send and
relay.delivery, the message stays `sending` until its lease runs out, and the sweep hands it
to a worker again and again (every RELAY_LEASE_SECONDS) until its lifetime ends, when it is
failed as merely `expired`. (The To header meanwhile carries an encoded word as a local
part, "=?utf-8?q?bo=C5=BF?=@example.com", which RFC 2047 forbids.) A 202 should be for an
address the relay can send to, or the delivery should fail it with a reason.
"""

import pytest

from relay import delivery
from relay.models import Message, Status

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("address", ["bo\u017f@example.com", "b\u0131ll@example.com", "\u212aim@example.com"])
def test_a_non_ascii_local_part_is_refused_or_fails_with_a_reason(delivering_here, send, smtp_server, smtp_sender, address):
    response = send(via=smtp_sender, to=address)
    if response.status_code == 400:
        return  # refused at the door: fine
    assert response.status_code == 202
    message_id = response.json()["id"]
    try:
        delivery.deliver(message_id)
    except Exception as exc:  # noqa: BLE001
        message = Message.objects.get(public_id=message_id)
        pytest.fail(
            f"accepted with 202, then delivery raised {type(exc).__name__}: {exc}; "
            f"the message is left {message.status!r} until its lease runs out"
        )
    message = Message.objects.get(public_id=message_id)
    assert message.status != Status.SENDING
