import pytest

from senders import actions as sender_actions


@pytest.fixture
def alice_sender(alice):
    return sender_actions.create_sender(
        alice, {"provider": "gmail", "from_email": "alice@example.org", "from_name": "Alice", "password": "app-pw"}
    )


@pytest.fixture
def send(alice_api, alice_sender):
    """POST /v1/send as alice with a valid body, overridable field by field."""

    def post(client=None, **overrides):
        body = {
            "sender": alice_sender.public_id,
            "to": "bob@example.com",
            "subject": "Hello there",
            "text": "Hi Bob",
        }
        body.update(overrides)
        body = {k: v for k, v in body.items() if v is not ...}
        return (client or alice_api).post("/v1/send", body, format="json")

    return post
