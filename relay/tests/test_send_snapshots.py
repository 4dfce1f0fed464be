"""POST /v1/send from snapshots: the steady state reads no key or sender before its one
statement, and that statement lets nothing through that the database no longer allows.

Each test sends once, so this process holds snapshots of alice's key and sender, then changes
something behind the snapshot's back (often with a bare UPDATE, as another process or a staff
tool would) and shows the very next request decided by what the database holds now.
"""

from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from accounts import keys
from accounts.actions import revoke_api_key, suspend_account
from accounts.models import ApiKey, User
from billing.models import Plan, Subscription, UsageCounter
from drake.testing.db import backend_pid, terminate
from relay.models import ApiRequest, Message
from senders.actions import delete_sender, disable_sender, enable_sender
from senders.models import Sender


@pytest.fixture
def warm(send, alice_key):
    """alice has sent: her key and sender are in this process's snapshots."""
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement accept that checks snapshots is PostgreSQL's")
    assert send().status_code == 202
    assert ApiKey.objects.authenticate_from_snapshot(alice_key) is not None
    return send


def _accepted() -> int:
    return Message.objects.count()


def test_it_sends_from_the_snapshot_in_one_statement(warm, django_assert_num_queries):
    with django_assert_num_queries(1) as captured:
        assert warm().status_code == 202
    statement = captured.captured_queries[0]["sql"]
    assert '"accounts_apikey"' in statement
    assert '"senders_sender"' in statement
    assert _accepted() == 2


def test_a_revoked_key_is_refused_at_once(warm, alice):
    revoke_api_key(ApiKey.objects.get(user=alice), via="shell")
    response = warm()
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_failed"
    assert _accepted() == 1
    # Its usage record says what it was: a refusal.
    assert ApiRequest.objects.filter(status=401, error_type="authentication_failed").count() == 1
    assert ApiRequest.objects.filter(status=202).count() == 1


def test_a_revoked_keys_401_carries_no_rate_limit_headers(warm, alice):
    # As every other 401 (README): the key was counted from its snapshot before the database refused it.
    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    response = warm()
    assert response.status_code == 401
    assert not [name for name in response.headers if name.lower().startswith("x-ratelimit-")]


def test_a_key_revoked_by_another_process_is_refused_at_once(warm, alice):
    # As another web process or a staff tool would: no code of this process sees it happen.
    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    assert warm().status_code == 401
    assert _accepted() == 1


def test_a_revoked_key_gets_401_before_a_bad_request(warm, alice):
    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    response = warm(to="not an address")
    assert response.status_code == 401


def test_a_revoked_key_gets_401_before_a_rate_limit(warm, alice, settings):
    settings.API_ACCOUNT_RATE_PER_MINUTE = 1  # warm already used the minute's one request.
    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    assert warm().status_code == 401


def test_a_deactivated_account_is_refused_at_once(warm, alice):
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert warm().status_code == 401
    assert _accepted() == 1


def test_a_suspended_account_is_403_at_once(warm, alice):
    suspend_account(alice, reason="abuse report", actor=None)
    response = warm()
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_denied"
    assert _accepted() == 1


def test_a_sender_disabled_meanwhile_is_403(warm, alice_sender):
    Sender.objects.filter(pk=alice_sender.pk).update(disabled_at=timezone.now(), disabled_reason="by support")
    response = warm()
    assert response.status_code == 403
    assert response.json()["error"]["field"] == "sender"
    assert _accepted() == 1


def test_a_sender_disabled_by_support_is_refused_at_once(warm, alice, alice_api, alice_sender, django_user_model):
    sam = django_user_model.objects.create_user("sam@3drake.test", "a sturdy staff passphrase", is_staff=True)
    assert disable_sender(alice_sender, "Phishing reported by recipients", actor=sam)
    # Every other web process still holds the sender as it was, and so does this one: only
    # the database can refuse it there.
    assert not Sender.objects.of_account_from_snapshot(alice, alice_sender.public_id).is_disabled
    response = warm()
    assert response.status_code == 403
    assert response.json()["error"] == {
        "type": "permission_denied",
        "message": "This sender is disabled by support: Phishing reported by recipients. Please contact support.",
        "field": "sender",
    }
    assert _accepted() == 1
    # Refused again, from the snapshot now refreshed, and with an Idempotency-Key (no snapshot).
    assert warm().status_code == 403
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "Hi"}
    assert alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="k1").status_code == 403
    assert _accepted() == 1


def test_a_sender_enabled_again_sends_at_once(warm, alice, alice_sender, django_user_model):
    sam = django_user_model.objects.create_user("sam@3drake.test", "a sturdy staff passphrase", is_staff=True)
    disable_sender(alice_sender, "Phishing reported by recipients", actor=sam)
    assert warm().status_code == 403
    assert Sender.objects.of_account_from_snapshot(alice, alice_sender.public_id).is_disabled
    enable_sender(alice_sender, "resolved with the customer", actor=sam)
    assert warm().status_code == 202
    assert _accepted() == 2


def test_a_deleted_sender_is_404(warm, alice, alice_sender):
    delete_sender(alice_sender, actor=alice, via="shell")
    before = _accepted()
    response = warm(sender=alice_sender.public_id)
    assert response.status_code == 404
    assert _accepted() == before


def test_a_sender_moved_to_another_account_is_404(warm, alice_sender, charlie):
    Sender.objects.filter(pk=alice_sender.pk).update(user=charlie)
    assert warm().status_code == 404
    assert _accepted() == 1


def test_a_changed_from_address_is_the_one_used(warm, alice_sender):
    Sender.objects.filter(pk=alice_sender.pk).update(from_email="news@example.org")
    response = warm()
    assert response.status_code == 202
    message = Message.objects.get(public_id=response.json()["id"])
    assert message.from_email == "news@example.org"
    assert message.message_id_header.endswith("@example.org>")


def test_a_lowered_recipient_cap_holds_at_once(warm, alice_sender):
    Sender.objects.filter(pk=alice_sender.pk).update(max_recipients_per_message=1)
    response = warm(to=["bob@example.com", "carol@example.com"])
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "to"


def test_a_new_subject_policy_applies_to_the_next_message(warm, alice):
    Plan.objects.filter(pk=alice.plan_id).update(subject_policy="length")
    response = warm(subject="Quarterly report")
    assert response.status_code == 202
    assert Message.objects.get(public_id=response.json()["id"]).subject == {"policy": "length", "length": 16}


def test_a_lowered_quota_holds_at_once(warm, alice):
    Plan.objects.filter(pk=alice.plan_id).update(monthly_quota=1)
    response = warm()
    assert response.status_code == 402
    assert _accepted() == 1


def test_a_new_billing_period_is_charged_in_it(warm, alice):
    now = timezone.now()
    start = now - timedelta(days=1)
    Subscription.objects.create(
        user=alice,
        stripe_customer_id="cus_snapshots",
        status="active",
        current_period_start=start,
        current_period_end=now + timedelta(days=29),
    )
    assert warm().status_code == 202
    assert UsageCounter.objects.get(user=alice, period_start=start).accepted == 1


def test_another_accounts_sender_is_404(warm, charlie_sender):
    assert warm(sender=charlie_sender.public_id).status_code == 404
    assert _accepted() == 1


def test_after_a_change_the_next_send_is_one_statement_again(warm, alice, django_assert_num_queries):
    Plan.objects.filter(pk=alice.plan_id).update(subject_policy="length")
    assert warm().status_code == 202  # Decided afresh: the snapshots are read again.
    with django_assert_num_queries(1):
        assert warm().status_code == 202


def test_a_wrong_secret_with_a_known_prefix_is_refused(warm, api, alice_key):
    # Well formed, a valid checksum, the prefix of alice's key in the snapshot: another secret.
    prefix = keys.parse(alice_key).prefix
    body = f"{keys.KEY_PREFIX}{prefix}_{'x' * keys.SECRET_LENGTH}"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {body + keys.checksum(body)}")
    assert warm(client=api).status_code == 401
    assert _accepted() == 1


def test_an_idempotency_key_does_not_pass_a_revoked_key(warm, alice, alice_api, alice_key):
    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    alice_api.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key}", HTTP_IDEMPOTENCY_KEY="k1")
    assert warm().status_code == 401
    assert _accepted() == 1


def test_an_idempotency_key_does_not_pass_a_suspension_or_a_used_up_quota(warm, alice, alice_api, alice_key):
    alice_api.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key}", HTTP_IDEMPOTENCY_KEY="k2")
    Plan.objects.filter(pk=alice.plan_id).update(monthly_quota=1)
    assert warm().status_code == 402
    suspend_account(alice, reason="abuse report", actor=None)
    assert warm().status_code == 403
    assert _accepted() == 1


def test_a_refused_key_leaves_the_snapshot_and_cannot_use_up_the_accounts_limit(
    warm, alice, alice_key, make_key, api, settings
):
    settings.API_ACCOUNT_RATE_PER_MINUTE = 4  # warm used one.
    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    for _ in range(3):
        assert warm().status_code == 401  # Only the first, from the snapshot, was counted.
    assert ApiKey.objects.authenticate_from_snapshot(alice_key) is None
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(alice)}")
    assert warm(client=api).status_code == 202


def test_a_lowered_api_rate_holds_at_once(warm, alice):
    Plan.objects.filter(pk=alice.plan_id).update(rate_per_minute=1)  # warm used the one.
    response = warm()
    assert response.status_code == 429
    assert response.headers["X-RateLimit-Limit"] == "1"
    assert _accepted() == 1


def test_options_with_a_revoked_key_is_401(warm, alice, alice_api):
    ApiKey.objects.filter(user=alice).update(revoked_at=timezone.now())
    assert alice_api.options("/v1/send").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_connection_dropped_under_the_snapshot_accept_is_503(warm, delivering_here):
    # Committed for real, so `delivering_here` keeps the session's worker (if one runs) off these
    # messages: its claim raced this test's teardown (TRUNCATE) into a deadlock once in CI.
    terminate(backend_pid())
    response = warm()
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "service_unavailable"
    connection.close_if_unusable_or_obsolete()  # The request's end: the error closes it.
    assert warm().status_code == 202
    assert _accepted() == 2


@pytest.mark.django_db(transaction=True)
def test_a_send_committed_is_a_202_even_if_recording_the_keys_use_fails(warm, alice, settings):
    """The key's last use is written after the accept's commit: its failure (here a lock held
    elsewhere, past lock_timeout) must not turn a queued message into a 503."""
    settings.API_KEY_LAST_USED_RESOLUTION_SECONDS = 0  # Every send records it.
    key = ApiKey.objects.get(user=alice)
    locker = connections.create_connection("default")
    try:
        with locker.cursor() as cursor:
            cursor.execute("BEGIN")
            # As an UPDATE of the row holds it; the accept's foreign key checks (KEY SHARE) pass.
            cursor.execute("SELECT 1 FROM accounts_apikey WHERE id = %s FOR NO KEY UPDATE", [key.pk])
            with connection.cursor() as ours:
                ours.execute("SET lock_timeout = '200ms'")
            response = warm()
            cursor.execute("ROLLBACK")
    finally:
        locker.close()
        with connection.cursor() as ours:
            ours.execute("SET lock_timeout = 0")
    assert response.status_code == 202
    assert Message.objects.filter(public_id=response.json()["id"]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_deleted_accounts_key_is_refused_at_once_and_its_refusal_names_no_account(warm, alice, caplog):
    """This process still holds the deleted account's key, account and sender: the send is
    401 all the same. Its refusal kept the snapshot's account on the request, so the usage
    record named the deleted account (the commit then failed its foreign key: the record was
    lost, an error logged, on every such request) and the 401 carried the deleted plan's
    rate-limit headers. Refused, the request is nobody's, as on the database path. Found by a
    privacy review helper."""
    from accounts import privacy

    privacy.delete_account(alice, via="shell")
    response = warm()
    assert response.status_code == 401
    assert "X-RateLimit-Limit" not in response.headers
    refused = ApiRequest.objects.get()
    assert (refused.status, refused.user_id, refused.key_prefix) == (401, None, "")
    assert "Could not record API usage" not in caplog.text
    assert _accepted() == 0
