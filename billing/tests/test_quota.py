"""The plan's monthly quota on POST /v1/send: 402 after the last allowed message, exact under races."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from billing.models import UsageCounter
from relay import outbox
from relay.models import Message
from senders import actions as sender_actions


@pytest.fixture
def tiny_plan(alice):
    alice.plan.monthly_quota = 3
    alice.plan.save()
    return alice.plan


@pytest.fixture
def alice_sender(alice):
    return sender_actions.create_sender(
        alice, {"provider": "gmail", "from_email": "alice@example.org", "password": "pw"}
    )


def _body(sender, n=0):
    return {"sender": sender.public_id, "to": "bob@example.com", "subject": f"n{n}", "text": "hi"}


def test_the_request_after_the_last_allowed_one_is_402(alice_api, alice_sender, tiny_plan):
    statuses = [alice_api.post("/v1/send", _body(alice_sender, n), format="json").status_code for n in range(4)]
    assert statuses == [202, 202, 202, 402]
    refused = alice_api.post("/v1/send", _body(alice_sender, 9), format="json")
    assert refused.json()["error"]["type"] == "quota_exceeded"
    assert Message.objects.count() == 3
    assert alice_api.get("/v1/usage").json()["remaining"] == 0


def test_idempotent_replays_are_not_charged_twice(alice_api, alice_sender, tiny_plan):
    for _ in range(5):
        assert (
            alice_api.post("/v1/send", _body(alice_sender), format="json", HTTP_IDEMPOTENCY_KEY="same").status_code
            == 202
        )
    assert UsageCounter.objects.get().accepted == 1


def test_a_refused_request_is_not_charged(alice_api, alice_sender, tiny_plan):
    alice_api.post("/v1/send", {**_body(alice_sender), "to": "not an address"}, format="json")
    assert not UsageCounter.objects.exists() or UsageCounter.objects.get().accepted == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_at_the_edge_never_exceed_the_quota(alice, alice_key, alice_sender, tiny_plan, monkeypatch):
    # Committed for real: keep a session worker (if one runs) away from these messages.
    monkeypatch.setattr(outbox, "enqueue", lambda public_id: True)
    barrier = threading.Barrier(8)
    statuses = []

    def post(n):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
        barrier.wait()
        try:
            statuses.append(client.post("/v1/send", _body(alice_sender, n), format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] * 3 + [402] * 5
    assert Message.objects.count() == 3
    assert UsageCounter.objects.get().accepted == 3
