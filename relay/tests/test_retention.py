"""rotate_logs: old raw logs become exact daily aggregates, IPs are truncated, a rerun changes nothing."""

import threading
from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from auditlog.models import AuditEvent
from relay import retention
from relay.models import ApiRequest, DailyUsage, IdempotencyKey, Message
from relay.retention import truncate_ip


def _message(user, sender, status, days_ago, category=None):
    now = timezone.now()
    return Message.objects.create(
        user=user,
        sender=sender,
        from_email=sender.from_email,
        to=["bob@example.com"],
        message_id_header="<x@example.org>",
        status=status,
        last_error={"category": category, "smtp_code": 550, "message": "no"} if category else None,
        expires_at=now,
        created_at=now - timedelta(days=days_ago),
    )


def _request(user, endpoint, status, days_ago, ip="203.0.113.77"):
    return ApiRequest.objects.create(
        user=user,
        method="POST",
        endpoint=endpoint,
        status=status,
        size_bucket="<1K",
        ip=ip,
        created_at=timezone.now() - timedelta(days=days_ago),
    )


def test_old_logs_fold_into_aggregates_that_add_up(alice, alice_sender):
    for _ in range(3):
        _message(alice, alice_sender, "sent", 40)
    _message(alice, alice_sender, "failed", 40, category="recipient_rejected")
    recent = _message(alice, alice_sender, "sent", 2)
    for _ in range(2):
        _request(alice, "/v1/send", 202, 40)
    _request(alice, "/v1/send", 429, 40)
    fresh = _request(alice, "/v1/send", 202, 1)
    old_ip = _request(alice, "/v1/account", 200, 10, ip="2001:db8:abcd:12:3456::1")
    out = StringIO()
    call_command("rotate_logs", "--quiet", stdout=out)
    assert "Rotated 4 message record(s) and 3 request record(s)" in out.getvalue()

    assert list(Message.objects.values_list("pk", flat=True)) == [recent.pk]
    assert set(ApiRequest.objects.values_list("pk", flat=True)) == {fresh.pk, old_ip.pk}
    counts = {(a.metric, a.dimension): a.count for a in DailyUsage.objects.filter(user=alice)}
    assert counts[("messages.status", "sent")] == 3
    assert counts[("messages.status", "failed")] == 1
    assert counts[("messages.error", "recipient_rejected")] == 1
    assert counts[("requests.endpoint", "POST /v1/send")] == 3
    assert counts[("requests.status", "202")] == 2 and counts[("requests.status", "429")] == 1
    assert sum(c for (m, _), c in counts.items() if m == "messages.status") == 4

    old_ip.refresh_from_db()
    assert (old_ip.ip, old_ip.ip_truncated) == ("2001:db8:abcd::", True)
    fresh.refresh_from_db()
    assert fresh.ip == "203.0.113.77"

    # A second run changes nothing.
    before = list(DailyUsage.objects.values_list("metric", "dimension", "count"))
    out = StringIO()
    call_command("rotate_logs", "--quiet", stdout=out)
    assert "Rotated 0 message record(s) and 0 request record(s)" in out.getvalue()
    assert list(DailyUsage.objects.values_list("metric", "dimension", "count")) == before


def test_the_window_is_the_plans(alice, alice_sender):
    alice.plan.retention_days = 90
    alice.plan.save()
    kept = _message(alice, alice_sender, "sent", 40)
    call_command("rotate_logs", "--quiet", stdout=StringIO())
    assert Message.objects.filter(pk=kept.pk).exists()


def test_old_customer_security_events_go_staff_trails_stay(alice, settings):
    with time_machine.travel(timezone.now() - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS + 5)):
        AuditEvent.objects.create(action="login.succeeded", account_id=alice.pk)
        AuditEvent.objects.create(action="admin.viewed", account_id=alice.pk)
    call_command("rotate_logs", "--quiet", stdout=StringIO())
    actions = set(AuditEvent.objects.filter(account_id=alice.pk).values_list("action", flat=True))
    assert "login.succeeded" not in actions and "admin.viewed" in actions


def test_ip_truncation():
    assert truncate_ip("203.0.113.77") == "203.0.113.0"
    assert truncate_ip("2001:db8:abcd:12::1") == "2001:db8:abcd::"


def test_anonymous_requests_expire_too(db):
    old = _request(None, "/v1/account", 401, 40)
    call_command("rotate_logs", "--quiet", stdout=StringIO())
    assert not ApiRequest.objects.filter(pk=old.pk).exists()


def test_idempotency_keys_go_once_their_24_hours_are_over(send, alice_api, alice_sender):
    """A key is kept 24 hours (IdempotencyKey, README); it stayed as long as its message, the
    plan's whole log window, with the customer's key and a hash of the message's content
    (body and subject included). Found by a privacy review helper."""
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Your code", "text": "123456"}
    with time_machine.travel(timezone.now() - timedelta(hours=25)):
        assert alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="old").status_code == 202
    assert alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="new").status_code == 202
    out = StringIO()
    call_command("rotate_logs", "--quiet", stdout=out)
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
    assert Message.objects.count() == 2  # The log itself keeps the plan's window.
    assert "1 Idempotency-Key(s)" in out.getvalue()


def test_expired_console_sessions_go(alice, charlie):
    """A session that was never logged out of (most of them) stayed in django_session for
    good after it expired, with the account it signed in (nothing ran clearsessions). Found by
    a privacy review helper."""
    from django.contrib.sessions.models import Session
    from django.test import Client

    with time_machine.travel(timezone.now() - timedelta(days=30)):
        Client().force_login(alice)
    Client().force_login(charlie)
    call_command("rotate_logs", "--quiet", stdout=StringIO())
    left = [session.get_decoded().get("_auth_user_id") for session in Session.objects.all()]
    assert left == [str(charlie.pk)]


def test_every_kind_of_event_a_customer_makes_goes_after_the_window(alice, settings):
    """Only logins, key, sender, two-factor and password events expired: an email change (the
    new address in its label), an export request, the sign-up and its activation, each with
    the customer's IP, stayed for as long as the account. Found by a privacy review helper."""
    mine = ["email.change_requested", "email.changed", "export.requested", "account.created", "account.activated"]
    with time_machine.travel(timezone.now() - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS + 5)):
        for action in mine:
            AuditEvent.objects.create(
                action=action, account_id=alice.pk, actor=alice, actor_label=alice.email, actor_ip="203.0.113.9"
            )
        AuditEvent.objects.create(action="account.suspended", account_id=alice.pk, actor_is_staff=True)
    call_command("rotate_logs", "--quiet", stdout=StringIO())
    left = set(AuditEvent.objects.filter(account_id=alice.pk, created_at__lt=timezone.now() - timedelta(days=1)))
    assert {event.action for event in left} == {"account.suspended"}


def test_the_dashboard_chart_keeps_the_days_whose_logs_were_rotated(client, alice, alice_sender):
    """A plan keeping logs 7 days: rotation folded older messages into DailyUsage, and the
    dashboard's "Last 30 days" chart, which read the message log only, showed those 23 days
    empty (or "Nothing sent in the last 30 days yet" when nothing was recent)."""
    alice.plan.retention_days = 7
    alice.plan.save(update_fields=["retention_days"])
    for _ in range(2):
        _message(alice, alice_sender, "sent", 10)
    _message(alice, alice_sender, "failed", 10, category="recipient_rejected")
    day = (timezone.now() - timedelta(days=10)).date()
    client.force_login(alice)
    before = client.get("/dashboard/").content.decode()
    call_command("rotate_logs", "--quiet", stdout=StringIO())
    assert not Message.objects.filter(user=alice).exists()

    after = client.get("/dashboard/").content.decode()
    assert f"{day:%b} {day.day}: 2 sent, 1 failed</title>" in before
    assert f"{day:%b} {day.day}: 2 sent, 1 failed</title>" in after
    assert f"<td>{day:%Y-%m-%d}</td><td>2</td><td>1</td>" in after


@pytest.mark.django_db(transaction=True)
@pytest.mark.services
def test_two_rotations_at_once_count_every_record_once(alice, alice_sender):
    """beat's daily run still going when an operator runs rotate_logs, or Redis handing the
    unacknowledged task to another worker after its visibility timeout (an hour; a big log
    takes longer): the second run folded the rows the first had deleted but not yet committed
    into the daily counts again (sent twice over on /v1/usage and the dashboard), or, adding
    to a count the first had just made, stopped with an IntegrityError."""
    noon = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=40)
    for _ in range(3):
        Message.objects.filter(pk=_message(alice, alice_sender, "sent", 0).pk).update(created_at=noon)
    first_done, first_may_commit = threading.Event(), threading.Event()
    errors = []

    def first() -> None:
        try:
            with transaction.atomic():  # Its batches stay uncommitted until the second has begun.
                retention.rotate()
                first_done.set()
                first_may_commit.wait(10)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    def second() -> None:
        try:
            retention.rotate()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_done.wait(10)
    # Two more of the same day, committed meanwhile: the second run's to fold, into the first's count.
    for _ in range(2):
        Message.objects.filter(pk=_message(alice, alice_sender, "sent", 0).pk).update(created_at=noon)
    threads[1].start()
    threads[1].join(1)  # It waits on the first's locks, or finds nothing left to do.
    first_may_commit.set()
    for thread in threads:
        thread.join(20)

    assert errors == []
    assert not Message.objects.filter(user=alice).exists()
    counts = {(a.metric, a.dimension): a.count for a in DailyUsage.objects.filter(user=alice)}
    assert counts == {("messages.status", "sent"): 5}
