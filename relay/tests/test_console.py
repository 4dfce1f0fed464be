"""The delivery log page: filters, exact recipient search, detail with attempts, 404 across accounts."""

import pytest
from django.utils import timezone

from relay.models import DeliveryAttempt, Message
from senders import actions


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def test_the_log_lists_and_filters(signed_in, send):
    first = send(to="bob@example.com").json()["id"]
    second = send(to=["Carol <carol@example.com>"]).json()["id"]
    Message.objects.filter(public_id=first).update(status="sent")
    page = signed_in.get("/messages/").content.decode()
    assert first in page and second in page
    sent_only = signed_in.get("/messages/?status=sent").content.decode()
    assert first in sent_only and second not in sent_only
    by_rcpt = signed_in.get("/messages/?recipient=carol@example.com").content.decode()
    assert second in by_rcpt and first not in by_rcpt
    # Exact, not fuzzy.
    assert second not in signed_in.get("/messages/?recipient=carol@example").content.decode()


def test_the_detail_page_shows_attempts(signed_in, send):
    message = Message.objects.get(public_id=send().json()["id"])
    DeliveryAttempt.objects.create(
        message=message,
        number=1,
        started_at=message.created_at,
        outcome="retry",
        smtp_code=451,
        reply="4.3.0 try later",
    )
    page = signed_in.get(f"/messages/{message.public_id}/").content.decode()
    assert "4.3.0 try later" in page
    assert message.message_id_header.replace("<", "&lt;").replace(">", "&gt;") in page


def test_charlie_gets_404(client, send, charlie):
    message_id = send().json()["id"]
    client.force_login(charlie)
    assert client.get(f"/messages/{message_id}/").status_code == 404
    assert message_id not in client.get("/messages/").content.decode()


def test_the_dashboard_shows_usage_against_quota_and_a_chart(signed_in, send):
    ids = [send().json()["id"] for _ in range(3)]
    Message.objects.filter(public_id__in=ids[:2]).update(status="sent")
    Message.objects.filter(public_id=ids[2]).update(status="failed")
    page = signed_in.get("/dashboard/").content.decode()
    assert '<progress id="quota-bar" class="quota" max="1000" value="3">' in page
    assert "<svg" in page and 'class="bar-sent"' in page
    assert ": 2 sent, 1 failed</title>" in page


def test_the_api_request_log_filters_by_status(signed_in, send, alice_api):
    send()
    alice_api.get("/v1/messages/msg_missing")
    everything = signed_in.get("/messages/api-requests/").content.decode()
    assert "/v1/send" in everything and "/v1/messages/{message_id}" in everything
    errors = signed_in.get("/messages/api-requests/?status=4xx").content.decode()
    assert "/v1/messages/{message_id}" in errors and "POST /v1/send" not in errors


def test_another_accounts_requests_are_not_listed(client, send, charlie):
    send()
    client.force_login(charlie)
    assert "/v1/send" not in client.get("/messages/api-requests/").content.decode()


def test_the_test_email_button_goes_through_the_relay(signed_in, alice, alice_sender):
    response = signed_in.post(f"/messages/test/{alice_sender.public_id}/")
    message = Message.objects.get()
    assert response["Location"] == f"/messages/{message.public_id}/"
    assert message.to == [alice.email]


def test_docs_use_the_customers_own_sender(signed_in, alice_sender):
    assert alice_sender.public_id in signed_in.get("/docs/").content.decode()


def test_docs_call_ready_only_a_verified_sender_and_prefer_it(signed_in, alice, alice_sender):
    page = signed_in.get("/docs/").content.decode()
    assert "is ready" not in page
    assert "not verified yet" in page
    alice_sender.verified_at = timezone.now()
    alice_sender.save(update_fields=["verified_at"])
    # A newer sender whose verification failed is not the one to copy into a first call.
    broken = actions.create_sender(alice, {"provider": "outlook", "from_email": "alice@example.org", "password": "x"})
    broken.last_verify_error = {"category": "auth_failed", "smtp_code": 535, "message": "no", "hint": ""}
    broken.save(update_fields=["last_verify_error"])
    page = signed_in.get("/docs/").content.decode()
    assert f"<code>{alice_sender.public_id}</code> (alice@example.org) is ready" in page
    assert broken.public_id not in page


def test_the_policy_notice_shows_until_dismissed(signed_in, alice):
    page = signed_in.get("/dashboard/").content.decode()
    assert "Privacy Policy</a> was updated" in page
    signed_in.post("/privacy/acknowledge/", {"next": "/dashboard/"})
    assert "was updated" not in signed_in.get("/dashboard/").content.decode()
    policy = signed_in.get("/privacy/").content.decode()
    assert "Last updated" in policy and "What we do NOT collect" in policy


@pytest.mark.parametrize("after", ["//evil.example/phish", "https://evil.example/", "/\\evil.example"])
def test_dismissing_the_notice_stays_on_this_site(signed_in, alice, after):
    """ "//evil.example" starts with "/" too (a review)."""
    response = signed_in.post("/privacy/acknowledge/", {"next": after})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"


@pytest.mark.parametrize("status", ["²", "①", "9" * 5000, "abc", "404"])
def test_the_request_log_takes_any_status_filter(signed_in, status):
    """ "²" is a digit to str.isdigit(), not to int(): a 500 before (a review)."""
    assert signed_in.get("/messages/api-requests/", {"status": status}).status_code == 200


def test_the_recipient_search_finds_an_internationalized_domain_as_it_was_sent(signed_in, send):
    message_id = send(to="bob@bücher.example").json()["id"]
    assert Message.objects.get(public_id=message_id).to == ["bob@xn--bcher-kva.example"]
    assert message_id in signed_in.get("/messages/?recipient=bob@xn--bcher-kva.example").content.decode()
    # The customer searches for the address as their application sent it.
    assert message_id in signed_in.get("/messages/?recipient=bob@bücher.example").content.decode()


def test_every_time_the_console_shows_says_its_zone(signed_in, alice, alice_sender, alice_key, send):
    """The times are UTC, but only the message page said so: the log, the request log, the keys,
    the sender and the security activity showed bare times, which a reader takes for local
    time, and a message's attempts only a time of day (its retries span a day)."""
    import re

    message = Message.objects.get(public_id=send().json()["id"])
    DeliveryAttempt.objects.create(
        message=message, number=1, started_at=message.created_at, outcome="retry", smtp_code=451, reply="later"
    )
    alice_sender.verified_at = timezone.now()
    alice_sender.save(update_fields=["verified_at"])
    pages = [
        "/messages/",
        "/messages/api-requests/",
        f"/messages/{message.public_id}/",
        "/keys/",
        f"/senders/{alice_sender.public_id}/",
        "/account/activity/",
    ]
    for path in pages:
        page = signed_in.get(path).content.decode()
        shown = re.findall(r'<time datetime="[^"]*T[^"]*">([^<]*)</time>', page)
        assert shown, f"{path} shows no time"
        for text in shown:
            assert text.endswith(" UTC"), f"{path}: {text!r} does not say its zone"
    attempt_started = message.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert attempt_started in signed_in.get(f"/messages/{message.public_id}/").content.decode()
    # The date filters are UTC days too.
    log = signed_in.get("/messages/").content.decode()
    assert '<label for="f-from">From date (UTC)</label>' in log
    assert '<label for="f-to">To date (UTC)</label>' in log
