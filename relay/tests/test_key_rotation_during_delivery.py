"""A new FIELD_ENCRYPTION_KEYS key reaches the web before the worker (a restart one process at a
time, or `rotate_encryption_keys` run while a worker with the old list still delivers)."""

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from relay import delivery
from relay.models import Message, OutboxContent, Status

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


def test_a_message_the_worker_cannot_decrypt_yet_waits_for_a_worker_that_can(send, smtp_server, smtp_sender, settings):
    """It failed at once as content_unreadable, its content deleted: accepted with a 202 and
    never sent, for every message accepted or re-encrypted under the new key until the worker
    restarted. Found by an operator review."""
    old = list(settings.FIELD_ENCRYPTION_KEYS)
    new = [Fernet.generate_key().decode(), *old]
    settings.FIELD_ENCRYPTION_KEYS = new  # The web, restarted first.
    message_id = send(via=smtp_sender).json()["id"]

    settings.FIELD_ENCRYPTION_KEYS = old  # The worker, not restarted yet.
    delivery.deliver(message_id)
    message = Message.objects.get(public_id=message_id)
    assert message.status == Status.QUEUED, message.last_error
    assert message.last_error["category"] == "content_unreadable"
    assert OutboxContent.objects.filter(message=message).exists()
    assert smtp_server.messages == []

    settings.FIELD_ENCRYPTION_KEYS = new  # The worker, restarted.
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    delivery.deliver(message_id)
    assert Message.objects.get(pk=message.pk).status == Status.SENT
    assert len(smtp_server.messages) == 1
