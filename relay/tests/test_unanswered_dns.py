"""A sender whose host's name servers do not answer: its delivery ends by the task's time limit
and is tried again later (the lookup is not refused, it may answer next time).

The lookup was not bounded by the delivery's deadline: it held the worker's thread for the
system resolver's whole timeout. Name servers that do not answer are simulated (conftest's
hanging_dns: socket.getaddrinfo hangs for smtp.alice.test, drake.testing.dns; a real one
would need another /etc/resolv.conf). Deliveries run in this process (delivering_here).
"""

import time

import pytest

from relay import delivery
from relay.models import DeliveryAttempt, Message, Status
from senders import actions as sender_actions

from .conftest import smtp_sender_fields

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def in_process(delivering_here):
    return delivering_here


def test_a_lookup_that_does_not_answer_is_retried_by_the_time_limit(
    alice, smtp_server, relay_settings, hanging_dns, send
):
    relay_settings.RELAY_TASK_TIME_LIMIT = 1
    sender = sender_actions.create_sender(alice, smtp_sender_fields(smtp_server, host="smtp.alice.test"))
    public_id = send(via=sender).json()["id"]
    started = time.monotonic()
    outcome = delivery.deliver(public_id)
    elapsed = time.monotonic() - started
    assert elapsed < 1 + 0.5, f"the lookup held the delivery for {elapsed:.1f} s"
    assert outcome == "retry"
    assert hanging_dns.hung == ["smtp.alice.test"]
    message = Message.objects.get(public_id=public_id)
    assert message.status == Status.QUEUED and message.attempts == 1 and message.next_attempt_at
    assert message.last_error["category"] == "host_not_allowed"
    assert "DNS lookup of 'smtp.alice.test' timed out" in message.last_error["message"]
    assert DeliveryAttempt.objects.get(message=message).outcome == "retry"
    assert smtp_server.messages == []


def test_a_resolver_that_gives_up_before_the_time_limit_is_retried_too(
    alice, smtp_server, relay_settings, hanging_dns, send
):
    """With the default 120 s time limit the resolver gives up first (resolv.conf: 5 s × 2 by
    default) and says EAI_AGAIN, "try again": that failed the message for good."""
    hanging_dns.give_up = 0
    sender = sender_actions.create_sender(alice, smtp_sender_fields(smtp_server, host="smtp.alice.test"))
    public_id = send(via=sender).json()["id"]
    assert delivery.deliver(public_id) == "retry"
    message = Message.objects.get(public_id=public_id)
    assert message.status == Status.QUEUED and message.attempts == 1
    assert message.last_error["category"] == "host_not_allowed"
    assert "DNS lookup of 'smtp.alice.test' timed out or failed for now" in message.last_error["message"]


def test_a_host_name_that_resolves_still_delivers(alice, smtp_server, relay_settings, send):
    """localhost, from /etc/hosts by the real resolver (127.0.0.1 on these machines, where the
    test server listens), looked up under the delivery's deadline; TLS checked against it."""
    sender = sender_actions.create_sender(alice, smtp_sender_fields(smtp_server, host="localhost"))
    public_id = send(via=sender).json()["id"]
    assert delivery.deliver(public_id) == "sent"
    assert len(smtp_server.messages) == 1
    assert Message.objects.get(public_id=public_id).status == Status.SENT
