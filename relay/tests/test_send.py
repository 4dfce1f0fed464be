"""POST /v1/send accepts durably: one transaction, content encrypted, 202 with an id."""

import json

import pytest
from django.db import connection
from rest_framework.test import APIClient

from relay.models import Message, OutboxContent, Status
from senders.models import Sender

MARKER = "ZQX-unique-marker-7731"


def test_it_accepts_and_answers_202(send, alice):
    response = send()
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    message = Message.objects.get(public_id=body["id"])
    assert message.user == alice
    assert message.status == Status.QUEUED
    assert message.to == ["bob@example.com"]
    assert message.from_email == "alice@example.org"
    assert message.message_id_header.endswith("@example.org>")
    assert OutboxContent.objects.filter(message=message).exists()


def test_the_send_path_is_a_handful_of_queries(send, django_assert_num_queries):
    send()  # The key's first use records last_used_at; later uses within a minute do not.
    # PostgreSQL: the accept alone, one statement (quota UPDATE and the message, content and
    # usage record INSERTs in one WITH), which also checks the key and sender this process
    # read before (drake.snapshots). Elsewhere: key lookup, sender lookup and a transaction
    # with the four (its savepoint pair is the test's own wrapping transaction showing through).
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 8):
        assert send().status_code == 202


def test_nothing_of_the_content_is_stored_in_clear(send):
    response = send(
        subject=f"Invoice {MARKER}",
        text=f"body {MARKER}",
        html=f"<p>{MARKER}</p>",
        bcc=["hidden-bcc@example.net"],
    )
    assert response.status_code == 202
    with connection.cursor() as cursor:
        dump = ""
        for table in ("relay_message", "relay_outboxcontent"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608  (fixed table names)
            dump += repr(cursor.fetchall())
    assert MARKER not in dump
    assert "hidden-bcc@example.net" not in dump
    message = Message.objects.get()
    assert message.bcc_count == 1
    assert message.subject["policy"] == "sha256"


@pytest.mark.parametrize(
    ("policy", "expected_keys"),
    [("length", {"policy", "length"}), ("sha256", {"policy", "sha256"}), ("preview", {"policy", "preview", "length"})],
)
def test_the_subject_is_kept_only_in_the_plans_form(send, alice, policy, expected_keys):
    alice.plan.subject_policy = policy
    alice.plan.save()
    send(subject=f"Quarterly report {MARKER}")
    subject = Message.objects.get().subject
    assert set(subject) == expected_keys
    assert MARKER not in json.dumps(subject)
    if policy == "preview":
        assert subject["preview"] == "Quar…"


def test_the_keyed_hash_differs_between_accounts(send, alice, charlie, make_key):
    from relay.minimize import subject_hash

    assert subject_hash("Hello", account_id=alice.pk) != subject_hash("Hello", account_id=charlie.pk)


def test_another_accounts_sender_is_404(send, charlie_sender):
    response = send(sender=charlie_sender.public_id)
    assert response.status_code == 404
    assert response.json()["error"] == {"type": "not_found", "message": "No sender with this id.", "field": "sender"}
    assert not Message.objects.exists()


def test_a_disabled_sender_is_403(send, alice_sender):
    Sender.objects.filter(pk=alice_sender.pk).update(
        disabled_at="2026-11-01T00:00:00Z", disabled_reason="paused by support"
    )
    response = send()
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_denied"


def test_without_a_key_nothing_is_accepted(alice_sender):
    response = APIClient().post("/v1/send", {"sender": alice_sender.public_id}, format="json")
    assert response.status_code == 401


def test_the_send_path_runs_prepared_statements_on_postgresql(send):
    """Planning was most of PostgreSQL's CPU per request (bench/README.md): after a few uses on
    a connection, the accept, with its checks of the key and sender snapshots, is prepared."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's (SQLite caches its own)")
    # psycopg prepares a statement at its fifth use on a connection (prepare_threshold); the
    # first send takes the general path (the period's first message), so seven are plenty.
    for _ in range(7):
        assert send().status_code == 202
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        prepared = [row[0] for row in cursor.fetchall()]
    accepts = [statement for statement in prepared if 'INSERT INTO "relay_message"' in statement]
    assert len(accepts) == 1
    assert '"accounts_apikey"' in accepts[0]
    assert '"senders_sender"' in accepts[0]


def test_psycopg_converts_the_send_path_from_its_cache(send, monkeypatch):
    """psycopg caches a statement's placeholder conversion only under its size limits, which
    the one-statement accept exceeded (drake/postgresql/base.py raises them): every send then
    re-parsed it, a tenth of its CPU."""
    if connection.vendor != "postgresql":
        pytest.skip("psycopg is the PostgreSQL driver")
    from psycopg import _queries

    for _ in range(2):
        assert send().status_code == 202
    uncached = []
    original = _queries._query2pg_nocache
    monkeypatch.setattr(_queries, "_query2pg_nocache", lambda *args: uncached.append(args) or original(*args))
    assert send().status_code == 202
    assert uncached == []


@pytest.mark.parametrize(
    ("subject", "preview"),
    [("", ""), ("A", "…"), ("Hi", "H…"), ("Oops", "Oo…"), ("Hello", "He…"), ("Invoice!", "Invo…")],
)
def test_a_preview_never_keeps_a_short_subject_whole(subject, preview):
    """The first four characters of "Hi" or "Oops" were the whole subject, kept as it was."""
    from relay.minimize import minimize_subject

    kept = minimize_subject(subject, policy="preview", account_id=1)
    assert kept == {"policy": "preview", "preview": preview, "length": len(subject)}
