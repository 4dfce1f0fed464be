"""Usage metadata of every API request, and GET /v1/usage."""

from relay.models import ApiRequest, Message


def test_each_request_is_recorded_without_its_body(send, alice, alice_api):
    send(subject="secret subject", text="secret body")
    alice_api.get("/v1/messages/msg_nope", HTTP_USER_AGENT="curl/8.0")
    alice_api.post("/v1/send", {"to": "x"}, format="json")
    sent, missing, bad = ApiRequest.objects.order_by("id")
    assert (sent.method, sent.endpoint, sent.status, sent.error_type) == ("POST", "/v1/send", 202, "")
    assert sent.user == alice and sent.key_prefix.startswith("drk_")
    assert sent.size_bucket == "<1K"
    assert sent.ip == "127.0.0.1"
    assert (missing.endpoint, missing.status, missing.error_type, missing.user_agent) == (
        "/v1/messages/{message_id}",
        404,
        "not_found",
        "curl/8.0",
    )
    assert (bad.status, bad.error_type) == (400, "invalid_request")
    dump = repr(list(ApiRequest.objects.values()))
    assert "secret" not in dump and "msg_nope" not in dump


def test_refused_requests_are_recorded_too(api, db):
    api.get("/v1/account")
    record = ApiRequest.objects.get()
    assert (record.status, record.error_type, record.user) == (401, "authentication_failed", None)


def test_usage_counts_this_period(send, alice_api, alice):
    ids = [send().json()["id"] for _ in range(3)]
    Message.objects.filter(public_id=ids[0]).update(status="sent")
    Message.objects.filter(public_id=ids[1]).update(status="failed")
    body = alice_api.get("/v1/usage").json()
    assert body["accepted"] == 3 and body["sent"] == 1 and body["failed"] == 1
    assert body["quota"] == alice.plan.monthly_quota
    assert body["remaining"] == alice.plan.monthly_quota - 3
    assert body["period_start"].endswith("T00:00:00Z")


def test_every_send_is_recorded_once_whichever_way_it_is_accepted(send, alice_api, alice, alice_sender):
    """The accept writes its request's record in its own commit; replays, refusals and the
    general path (Idempotency-Key, quota used up) are recorded by the middleware, once each."""
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "Hi"}
    assert send().status_code == 202  # the period's first message: the general path
    assert send().status_code == 202  # the steady state (one statement on PostgreSQL)
    for _ in range(2):  # the first is accepted with its key, the second replayed
        assert alice_api.post("/v1/send", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code == 202
    alice.plan.monthly_quota = 3
    alice.plan.save()
    assert send().status_code == 402
    records = list(ApiRequest.objects.order_by("id").values_list("endpoint", "status", "error_type"))
    assert records == [("/v1/send", 202, "")] * 4 + [("/v1/send", 402, "quota_exceeded")]
    assert Message.objects.count() == 3
    # The record written with the message holds what the middleware's would.
    first, steady = ApiRequest.objects.order_by("id")[:2]
    fields = ("user_id", "key_prefix", "method", "size_bucket", "ip", "user_agent", "ip_truncated")
    assert [getattr(steady, f) for f in fields] == [getattr(first, f) for f in fields]
    assert steady.user == alice and steady.key_prefix.startswith("drk_") and steady.ip == "127.0.0.1"


def test_a_user_agent_with_control_characters_is_recorded_without_them(alice_api):
    alice_api.get("/v1/usage", HTTP_USER_AGENT="curl/8.0\x00\x1b[31m")
    assert ApiRequest.objects.get().user_agent == "curl/8.0[31m"


def test_usage_reports_what_the_quota_counted_after_retention_rotated_the_log(alice, alice_api, alice_sender):
    """A plan keeping logs 7 days: by the 20th, retention has rotated the period's first
    messages. /v1/usage said 'remaining 3' while the next send was refused 402."""
    from datetime import UTC, datetime

    import time_machine

    from relay import retention

    alice.plan.monthly_quota = 3
    alice.plan.retention_days = 7
    alice.plan.save()
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "Hi"}
    with time_machine.travel(datetime(2026, 11, 2, 12, 0, tzinfo=UTC)):
        for _ in range(3):
            assert alice_api.post("/v1/send", body, format="json").status_code == 202
    Message.objects.update(status="sent")
    with time_machine.travel(datetime(2026, 11, 20, 12, 0, tzinfo=UTC)):
        retention.rotate()
        assert not Message.objects.exists()
        assert alice_api.post("/v1/send", body, format="json").status_code == 402
        usage = alice_api.get("/v1/usage").json()
    assert (usage["accepted"], usage["remaining"]) == (3, 0)


def test_sent_and_failed_count_the_periods_messages_retention_rotated(client, alice, alice_api, alice_sender):
    """The same plan: after rotation /v1/usage said 4 accepted, 0 sent, 0 failed (and the
    dashboard the same), as if the three delivered or failed on the 2nd had vanished, though
    their outcomes were kept in the daily counts."""
    from datetime import UTC, datetime

    import time_machine

    from relay import retention

    alice.plan.retention_days = 7
    alice.plan.save()
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "Hi"}
    with time_machine.travel(datetime(2026, 11, 2, 12, 0, tzinfo=UTC)):
        ids = [alice_api.post("/v1/send", body, format="json").json()["id"] for _ in range(3)]
    Message.objects.filter(public_id__in=ids[:2]).update(status="sent")
    Message.objects.filter(public_id=ids[2]).update(status="failed")
    with time_machine.travel(datetime(2026, 11, 20, 12, 0, tzinfo=UTC)):
        alice_api.post("/v1/send", body, format="json")  # Recent: still in the log, queued.
        retention.rotate()
        assert Message.objects.count() == 1
        usage = alice_api.get("/v1/usage").json()
        client.force_login(alice)
        dashboard = client.get("/dashboard/").content.decode()
    assert (usage["accepted"], usage["sent"], usage["failed"]) == (4, 2, 1)
    assert '<span class="stat good">2</span> sent' in dashboard
    assert '<span class="stat bad">1</span> failed' in dashboard


def test_rotated_counts_of_the_previous_period_are_not_counted_in_this_one(alice, alice_api, alice_sender):
    from datetime import UTC, datetime

    import time_machine

    from relay import retention

    alice.plan.retention_days = 7
    alice.plan.save()
    body = {"sender": alice_sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "Hi"}
    with time_machine.travel(datetime(2026, 10, 31, 23, 0, tzinfo=UTC)):
        alice_api.post("/v1/send", body, format="json")
    Message.objects.update(status="sent")
    with time_machine.travel(datetime(2026, 11, 20, 12, 0, tzinfo=UTC)):
        retention.rotate()
        usage = alice_api.get("/v1/usage").json()
    assert (usage["accepted"], usage["sent"], usage["failed"]) == (0, 0, 0)
