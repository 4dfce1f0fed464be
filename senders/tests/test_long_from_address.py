"""A From address that passes the email validators (254 characters or fewer as typed) but is
longer than the 254-character column once its domain is written in IDNA (senders.validation
stores it so): the sender's insert raised DataError, a 500 from the API and the console alike,
where it is a 400 naming from_email (a domain over 253 octets in ASCII is no domain)."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from senders.models import Sender

# 221 characters as typed; 263 in IDNA (each label of thirty "ü" is 36 ASCII characters).
LONG_IDN_ADDRESS = "a@" + ".".join(["ü" * 30] * 7) + ".de"


@pytest.fixture
def alice_api_500s_shown(alice_key):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    return client


def test_the_api_refuses_it_naming_the_field(alice_api_500s_shown):
    body = {"provider": "gmail", "from_email": LONG_IDN_ADDRESS, "password": "app-pw"}
    response = alice_api_500s_shown.post("/v1/senders", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"] == {
        "type": "invalid_request",
        "message": response.json()["error"]["message"],
        "field": "from_email",
    }
    assert not Sender.objects.exists()


def test_the_console_shows_it_as_a_form_error(alice):
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    response = client.post("/senders/new/", {"provider": "gmail", "from_email": LONG_IDN_ADDRESS, "password": "app-pw"})
    assert response.status_code == 200, response.status_code
    assert 'id="id_from_email_error"' in response.content.decode()
    assert not Sender.objects.exists()
