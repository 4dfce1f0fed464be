"""Idempotency-Key on POST /v1/send: a replay creates nothing, another body is 409, races make one."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from relay import outbox
from relay.models import IdempotencyKey, Message


def test_a_replay_returns_the_original_and_creates_nothing(send, alice_api, alice_sender):
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "once"}
    first = alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    second = alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Message.objects.count() == 1


def test_the_same_key_with_another_body_is_409(alice_api, alice_sender):
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "once"}
    alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    response = alice_api.post("/v1/send", {**body, "text": "twice"}, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "idempotency_conflict"
    assert Message.objects.count() == 1


def test_keys_are_per_account(alice_api, alice_sender, charlie, make_key):
    from senders import actions

    charlie_sender = actions.create_sender(
        charlie, {"provider": "gmail", "from_email": "charlie@example.net", "password": "x"}
    )
    charlie_api = APIClient()
    charlie_api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(charlie)}")
    alice_api.post(
        "/v1/send",
        {"sender": alice_sender.public_id, "to": "b@example.com", "subject": "s", "text": "t"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    response = charlie_api.post(
        "/v1/send",
        {"sender": charlie_sender.public_id, "to": "b@example.com", "subject": "s", "text": "t"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert response.status_code == 202
    assert Message.objects.count() == 2


def test_a_key_expires_after_24_hours(alice_api, alice_sender):
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "once"}
    first = alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="daily").json()["id"]
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        second = alice_api.post("/v1/send", {**body, "text": "new day"}, format="json", HTTP_IDEMPOTENCY_KEY="daily")
    assert second.status_code == 202
    assert second.json()["id"] != first
    assert IdempotencyKey.objects.count() == 1


def test_a_bad_key_is_400(alice_api, alice_sender):
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "once"}
    response = alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="x" * 256)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "Idempotency-Key"


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_one_message(alice_key, alice_sender, monkeypatch):
    # Committed for real: keep a session worker (if one runs) away from these messages.
    monkeypatch.setattr(outbox, "enqueue", lambda public_id: True)
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "race"}
    barrier = threading.Barrier(6)
    answers = []

    def post():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
        barrier.wait()
        try:
            response = client.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="race-1")
            answers.append((response.status_code, response.json().get("id")))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Message.objects.count() == 1
    only = Message.objects.get().public_id
    assert all(status == 202 and message_id == only for status, message_id in answers), answers


def _plain_sha256(body: dict) -> str:
    """What the fingerprint was: SHA-256 of the canonical request, no key."""
    import hashlib
    import json
    from dataclasses import asdict

    from relay.validation import parse_send_request

    canonical = json.dumps(asdict(parse_send_request(body)), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_the_fingerprint_gives_nothing_of_the_content_without_the_secret_key(alice_api, alice_sender, settings):
    """The fingerprint was a plain SHA-256 of the request, body and subject included, stored
    outside the outbox's encryption (backups too): for a templated message ("Your code is
    123456", its recipient in the log) trying the million codes gives the content back. It is
    keyed now, per account, as the subject's hash is. Found by a privacy review helper."""
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Your code", "text": "123456"}
    first = alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="signin-1")
    stored = IdempotencyKey.objects.get().fingerprint
    assert stored != _plain_sha256(body)
    # The same request still replays, and another body is still a conflict.
    again = alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="signin-1")
    assert (again.status_code, again.json()["id"]) == (202, first.json()["id"])
    other = alice_api.post("/v1/send", {**body, "text": "654321"}, format="json", HTTP_IDEMPOTENCY_KEY="signin-1")
    assert other.status_code == 409


def test_a_key_stored_with_the_unkeyed_fingerprint_still_replays(alice_api, alice_sender):
    """Keys written before the fingerprint was keyed (up to 24 hours old at the upgrade)."""
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "once"}
    first = alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="before-upgrade")
    IdempotencyKey.objects.update(fingerprint=_plain_sha256(body))
    again = alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="before-upgrade")
    assert (again.status_code, again.json()["id"]) == (202, first.json()["id"])
    other = alice_api.post("/v1/send", {**body, "text": "twice"}, format="json", HTTP_IDEMPOTENCY_KEY="before-upgrade")
    assert other.status_code == 409
