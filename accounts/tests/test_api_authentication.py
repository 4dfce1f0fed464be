"""Every way of failing authentication is a 401 in SPEC's envelope."""

import time_machine
from django.db import connection
from rest_framework.test import APIClient

from accounts import actions, keys
from accounts.models import ApiKey


def _error(response):
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


def test_it_answers_with_the_account(alice_api):
    response = alice_api.get("/v1/account")
    assert response.status_code == 200
    assert response.json() == {
        "email": "alice@example.org",
        "name": "Alice",
        "plan": {"name": "Free", "monthly_quota": 1000, "rate_per_minute": 60, "subject_policy": "sha256"},
    }


def test_it_requires_a_header(api, db):
    response = api.get("/v1/account")
    assert response.status_code == 401
    assert _error(response)["type"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_rejects_the_wrong_scheme(api, alice_key):
    api.credentials(HTTP_AUTHORIZATION=f"Basic {alice_key}")
    response = api.get("/v1/account")
    assert response.status_code == 401
    assert _error(response)["type"] == "authentication_failed"


def test_it_rejects_a_malformed_key_without_a_query(api, db, django_assert_num_queries):
    api.credentials(HTTP_AUTHORIZATION="Bearer drk_not-a-key")
    # The only query is the usage record of the refused request: no key lookup.
    with django_assert_num_queries(1) as captured:
        response = api.get("/v1/account")
    assert response.status_code == 401
    assert "relay_apirequest" in captured.captured_queries[0]["sql"]


def test_it_rejects_a_bad_checksum_without_a_query(api, alice_key, django_assert_num_queries):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key[:-1]}{'a' if alice_key[-1] != 'a' else 'b'}")
    with django_assert_num_queries(1) as captured:
        response = api.get("/v1/account")
    assert response.status_code == 401
    assert "relay_apirequest" in captured.captured_queries[0]["sql"]


def test_it_rejects_an_unknown_prefix(api, db):
    raw, _ = keys.generate()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/v1/account").status_code == 401


def test_it_rejects_the_right_prefix_with_a_wrong_secret(api, alice, alice_key):
    parsed = keys.parse(alice_key)
    _, other = keys.generate()
    body = f"drk_{parsed.prefix}_{other.secret}"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {body}{keys.checksum(body)}")
    response = api.get("/v1/account")
    assert response.status_code == 401
    assert _error(response)["message"] == "The API key is invalid or revoked."


def test_it_rejects_a_revoked_key(alice_api, alice):
    key = ApiKey.objects.get(user=alice)
    assert actions.revoke_api_key(key, actor=alice)
    response = alice_api.get("/v1/account")
    assert response.status_code == 401
    assert _error(response)["type"] == "authentication_failed"


def test_it_never_accepts_a_key_from_the_query_string(alice_key, db):
    response = APIClient().get(f"/v1/account?api_key={alice_key}")
    assert response.status_code == 401
    assert "Authorization header" in _error(response)["message"]


def test_the_database_holds_no_plaintext_key(alice, alice_key):
    parsed = keys.parse(alice_key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        rows = cursor.fetchall()
    dump = repr(rows)
    assert parsed.secret not in dump
    assert alice_key not in dump
    assert keys.hash_secret(parsed.secret) in dump


def test_it_records_last_use_at_most_once_a_minute(alice_api, alice, django_assert_num_queries):
    with time_machine.travel("2026-11-24 10:00:00Z", tick=False):
        alice_api.get("/v1/account")
        first = ApiKey.objects.get(user=alice).last_used_at
        assert first is not None
    with time_machine.travel("2026-11-24 10:00:30Z", tick=False):
        # Authentication and the usage record: no last-used write inside the window.
        with django_assert_num_queries(2):
            alice_api.get("/v1/account")
        assert ApiKey.objects.get(user=alice).last_used_at == first
    with time_machine.travel("2026-11-24 10:01:30Z", tick=False):
        alice_api.get("/v1/account")
        assert ApiKey.objects.get(user=alice).last_used_at > first


def test_an_inactive_account_cannot_use_its_key(alice_api, alice):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert alice_api.get("/v1/account").status_code == 401
