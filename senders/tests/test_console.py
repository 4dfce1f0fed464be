"""Console pages for senders: connect with help, list, detail, delete with confirmation."""

from datetime import timedelta

import pytest
from django.utils import timezone

from senders import actions
from senders.models import Sender

SECRET = "console-secret-QWERTY-9"


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def test_the_connect_page_explains_each_provider(signed_in):
    page = signed_in.get("/senders/new/").content.decode()
    assert "myaccount.google.com/apppasswords" in page
    assert "Personal outlook.com" in page
    assert "end of 2026" in page


def test_the_provider_choice_is_a_group_with_its_name(signed_in):
    """Its label pointed at nothing (`<label for="">`): a screen reader announced the radios
    without saying what they choose (a console review)."""
    page = signed_in.get("/senders/new/").content.decode()
    assert '<label for="">' not in page
    assert "<fieldset><legend>Provider</legend>" in page


def test_alice_connects_a_gmail_sender(signed_in, alice):
    response = signed_in.post(
        "/senders/new/", {"provider": "gmail", "from_email": "alice@example.org", "password": SECRET}
    )
    sender = Sender.objects.get(user=alice)
    assert response.status_code == 302
    assert response["Location"] == f"/senders/{sender.public_id}/"
    detail = signed_in.get(response["Location"]).content.decode()
    assert "smtp.gmail.com:587" in detail
    assert SECRET not in detail
    assert SECRET not in signed_in.get("/senders/").content.decode()


def test_errors_show_in_place(signed_in):
    response = signed_in.post(
        "/senders/new/",
        {"provider": "smtp", "from_email": "alice@example.org", "password": SECRET, "port": 587, "security": "tls"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="id_host_error"' in page
    assert "The SMTP host is required" in page
    # The password is never echoed back into the form.
    assert SECRET not in page


def test_delete_asks_first_then_destroys(signed_in, alice):
    signed_in.post("/senders/new/", {"provider": "gmail", "from_email": "alice@example.org", "password": SECRET})
    sender = Sender.objects.get(user=alice)
    assert "Delete sender" in signed_in.get(f"/senders/{sender.public_id}/delete/").content.decode()
    assert Sender.objects.filter(pk=sender.pk).exists()
    assert signed_in.post(f"/senders/{sender.public_id}/delete/").status_code == 302
    assert not Sender.objects.filter(pk=sender.pk).exists()


def test_charlie_gets_404_for_alices_sender(client, alice, charlie):
    client.force_login(alice)
    client.post("/senders/new/", {"provider": "gmail", "from_email": "alice@example.org", "password": SECRET})
    sender = Sender.objects.get(user=alice)
    client.force_login(charlie)
    for path in ["", "verify/", "delete/"]:
        assert client.get(f"/senders/{sender.public_id}/{path}").status_code in (404, 405)
        assert client.post(f"/senders/{sender.public_id}/{path}").status_code == 404
    assert Sender.objects.filter(pk=sender.pk).exists()


def test_a_timed_pause_that_ran_out_no_longer_shows_as_paused(signed_in, alice):
    signed_in.post("/senders/new/", {"provider": "gmail", "from_email": "alice@example.org", "password": SECRET})
    sender = Sender.objects.get(user=alice)
    # A provider's "slow down" pauses the sender for a while; the row keeps paused_at after that.
    actions.pause_sender(
        sender, "The provider asked to slow down (421 4.7.0).", until=timezone.now() + timedelta(minutes=5)
    )
    assert 'badge warn">paused' in signed_in.get("/senders/").content.decode()
    assert "asked to slow down" in signed_in.get(f"/senders/{sender.public_id}/").content.decode()

    Sender.objects.filter(pk=sender.pk).update(paused_until=timezone.now() - timedelta(minutes=1))
    assert "paused" not in signed_in.get("/senders/").content.decode()
    detail = signed_in.get(f"/senders/{sender.public_id}/").content.decode()
    assert "paused" not in detail
    assert "asked to slow down" not in detail
