"""JSON logs carry a request id and never an API key or a Stripe secret."""

import json
import logging
import logging.config
import sys
import time

import pytest
import requests
from django.conf import settings

from drake.logging import JsonFormatter
from drake.testing.processes import gunicorn
from drake.tests.test_access_log_addresses import _production


def test_every_response_has_a_request_id(client, db):
    first = client.get("/healthz")["X-Request-ID"]
    assert len(first) == 16 and first != client.get("/healthz")["X-Request-ID"]
    assert client.get("/healthz", HTTP_X_REQUEST_ID="proxy-id-12345")["X-Request-ID"] == "proxy-id-12345"
    # A malformed id from outside is replaced, never echoed (no header injection, no log forging).
    assert client.get("/healthz", HTTP_X_REQUEST_ID="bad id\\n")["X-Request-ID"] != "bad id\\n"
    # Well formed but for a trailing newline, which "$" let through (a review): echoing it was a 500.
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abcdefgh\n")
    assert response.status_code == 200 and response["X-Request-ID"] != "abcdefgh\n"


def test_log_lines_are_json_and_mask_keys():
    record = logging.LogRecord(
        "drake", logging.WARNING, __file__, 1, "key %s failed", ("drk_ABCDEFGHIJ_secretsecret123",), None
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "WARNING" and line["logger"] == "drake"
    assert "secretsecret123" not in line["message"] and "drk_[redacted]" in line["message"]


def test_the_plain_development_log_masks_keys_too():
    """It did not (a carried-over gap): `make run` logs plain lines."""
    formatter = logging.config.DictConfigurator({}).configure_formatter(settings.LOGGING["formatters"]["plain"])
    try:
        raise ValueError("bad key drk_ABCDEFGHIJ_secretsecret123")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "drake", logging.WARNING, __file__, 1, "key %s failed", ("drk_ABCDEFGHIJ_secretsecret123",), exc_info
    )
    line = formatter.format(record)
    assert "WARNING drake key drk_[redacted] failed" in line
    assert "ValueError: bad key drk_[redacted]" in line
    assert "secretsecret123" not in line


def test_a_stripe_secret_in_an_exception_is_masked():
    """A Stripe secret key with a stray newline (an env file, a mounted secret) makes every
    call fail before it leaves: the HTTP library's error, which the Stripe error carries, quotes
    the whole Authorization header. billing.views logs it with its traceback: the key was in the
    JSON log in full. Found by a privacy review helper."""
    import stripe

    secret = "sk_live_" + "S3cr3t" * 6
    client = stripe.StripeClient(secret + "\n", base_addresses={"api": "http://127.0.0.1:9"}, max_network_retries=0)
    try:
        client.v1.customers.create(params={"email": "alice@example.org"})
    except stripe.StripeError:
        exc_info = sys.exc_info()
    assert secret in str(exc_info[1])  # What the library says.
    record = logging.LogRecord(
        "billing.views", logging.WARNING, __file__, 1, "Stripe said %s", (exc_info[1],), exc_info
    )
    line = JsonFormatter().format(record)
    assert "S3cr3t" not in line
    assert "sk_live_[redacted]" in json.loads(line)["message"]
    webhook = logging.LogRecord("x", logging.WARNING, __file__, 1, "whsec_abcDEF123456 rk_test_abcDEF123456", (), None)
    assert "abcDEF" not in JsonFormatter().format(webhook)


@pytest.mark.django_db(transaction=True)  # The server's usage record is committed: flushed after.
def test_gunicorn_logs_json_lines_with_the_request_id(tmp_path):
    """deploy.md: logs are JSON lines with the request id returned as X-Request-ID. gunicorn's
    own lines (its access log, a worker timing out or killed) were plain text in the same
    stream, and no line of a request that raised nothing carried its id: a customer quoting
    the X-Request-ID of a 401 or a 400 pointed to no line at all."""
    log_path = tmp_path / "gunicorn.log"
    env = {**_production(), "LOG_FORMAT": "json"}
    with gunicorn(env, log_path, args=("--access-logfile", "-")) as port:
        response = requests.get(
            f"http://127.0.0.1:{port}/v1/account", headers={"X-Request-ID": "probe-12345678"}, timeout=10
        )
        assert response.status_code == 401 and response.headers["X-Request-ID"] == "probe-12345678"
        time.sleep(0.5)
    lines = log_path.read_text(errors="replace").splitlines()
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n" + "\n".join(lines))
    access = [entry for entry in entries if entry["logger"] == "gunicorn.access"]
    assert [entry.get("request_id") for entry in access if '"GET /v1/account" 401' in entry["message"]] == [
        "probe-12345678"
    ], lines
    assert any(entry["logger"] == "gunicorn.error" for entry in entries), lines
