"""GET /metrics: Prometheus text, behind a token, computed from the shared database."""

from relay.models import Message


def test_metrics_are_off_without_a_token(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_token(client, db, settings):
    settings.METRICS_TOKEN = "t0ken-for-scrapers"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_metrics_report_queue_status_and_requests(client, send, settings):
    settings.METRICS_TOKEN = "t0ken-for-scrapers"
    ids = [send().json()["id"] for _ in range(3)]
    Message.objects.filter(public_id=ids[0]).update(
        status="failed", last_error={"category": "auth_failed", "smtp_code": 535, "message": "no"}
    )
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken-for-scrapers").content.decode()
    assert 'drake_messages{status="queued"} 2.0' in body
    assert 'drake_message_failures{category="auth_failed"} 1.0' in body
    assert "drake_queue_depth 2.0" in body
    assert 'drake_api_requests_last_hour{endpoint="POST /v1/send",status="202"} 3.0' in body
    assert "drake_delivery_latency_seconds_last_hour_bucket" in body
    assert "drake_outbox_oldest_age_seconds" in body


def test_metrics_labels_are_not_made_by_clients(client, db, settings):
    """An unauthenticated client picks HTTP methods at will; each must not become a series."""
    settings.METRICS_TOKEN = "t" * 32
    for n in range(50):
        client.generic(f"X{n:05d}", "/v1/account")
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "t" * 32).content.decode()
    series = [line for line in body.splitlines() if line.startswith("drake_api_requests_last_hour{")]
    assert len(series) <= 5, series[:10]
