"""A sender whose From address has a long domain (valid: 186 characters, labels under 63) is
connected with a 201, yet every POST /v1/send through it is a 503 service_unavailable.

The accept writes the message's Message-ID, `<32 hex digits@the From domain>`, into a
200-character column: longer, PostgreSQL refuses the row (DataError), and accept_message
reports any DatabaseError as "could not be durably accepted", SPEC's answer for a database
that is down. A client retries a 503 for good; nothing about the database is wrong."""

import pytest
from rest_framework.test import APIClient

from relay.models import Message

LONG_DOMAIN_ADDRESS = "alice@" + ".".join(["a" * 60] * 3) + ".com"


# Autocommit, as in production: inside a test transaction the failed statement aborts it and
# what follows fails for that reason instead.
@pytest.mark.django_db(transaction=True)
def test_a_sender_with_a_long_from_domain_can_send(alice_key):
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    created = api.post(
        "/v1/senders", {"provider": "gmail", "from_email": LONG_DOMAIN_ADDRESS, "password": "app-pw"}, format="json"
    )
    assert created.status_code == 201
    body = {"sender": created.json()["id"], "to": "bob@example.com", "subject": "Hello", "text": "Hi Bob"}
    response = api.post("/v1/send", body, format="json")
    assert response.status_code == 202, response.json()
    assert Message.objects.filter(public_id=response.json()["id"]).exists()
