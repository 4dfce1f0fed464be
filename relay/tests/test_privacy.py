"""The body, attachments and full subject are never kept: not in any table, log or broker message."""

import base64
import json
import logging

import pytest

from drake.testing.db import dump_every_table
from relay.models import Message, OutboxContent, Status
from relay.tests.test_delivery import wait_for_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

MARKER = "PRIVACY-MARKER-5f1e9a"


def _forms(marker: str) -> list[bytes]:
    """The marker as text, and base64 of it at each of the three alignments."""
    forms = [marker.encode()]
    for pad in range(3):
        encoded = base64.b64encode(b"x" * pad + marker.encode())
        forms.append(encoded[4 : len(encoded) - 4])
    return forms


def test_the_content_is_nowhere_after_delivery(worker, smtp_server, smtp_sender, send, caplog):
    from drake.testing.broker import queued_payloads

    caplog.set_level(logging.DEBUG)
    # The test SMTP server (the recipient side, in this process) logs what it receives; ours must not.
    caplog.set_level(logging.WARNING, logger="mail.log")
    worker.stop()
    try:
        response = send(
            via=smtp_sender,
            subject=f"Quarterly numbers {MARKER}",
            text=f"The body says {MARKER}",
            html=f"<p>{MARKER}</p>",
            attachments=[
                {"filename": "secret.txt", "content": base64.b64encode(f"attached {MARKER}".encode()).decode()}
            ],
        )
        assert response.status_code == 202
        message_id = response.json()["id"]

        # While queued: the outbox holds only ciphertext, and the broker only the id.
        content = OutboxContent.objects.get(message__public_id=message_id).content_encrypted
        for form in _forms(MARKER):
            assert form not in content.encode()
        payloads = queued_payloads()
        assert payloads, "the task should be waiting in the broker"
        for raw in payloads:
            envelope = json.loads(raw)
            body = base64.b64decode(envelope["body"])
            assert json.loads(body)[0] == [message_id]
            for form in _forms(MARKER):
                assert form not in raw and form not in body
    finally:
        worker.start()

    message = wait_for_status(message_id, {Status.SENT, Status.FAILED})
    assert message.status == Status.SENT
    # It really was sent, with the marker: so its absence below means something.
    assert MARKER.encode() in smtp_server.messages[0].data

    dump = dump_every_table()
    for form in _forms(MARKER):
        assert form not in dump
    logs = worker.log().encode() + caplog.text.encode()
    for form in _forms(MARKER):
        assert form not in logs
    assert not OutboxContent.objects.exists()
    assert Message.objects.get(public_id=message_id).subject["policy"] == "sha256"
