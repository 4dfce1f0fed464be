"""Every error under /v1/ is SPEC's envelope, whatever raised it."""

import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

pytestmark = [pytest.mark.urls("drake.tests.urls"), pytest.mark.django_db]


def _error(response):
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    return body["error"]


def test_an_unknown_endpoint_is_a_json_404():
    response = APIClient().get("/v1/nothing-here")
    assert response.status_code == 404
    assert _error(response) == {"type": "not_found", "message": "No such endpoint."}


def test_a_wrong_method_is_a_405_in_the_envelope(alice_api):
    response = alice_api.delete("/v1/account")
    assert response.status_code == 405
    assert _error(response)["type"] == "invalid_request"


def test_unparsable_json_is_invalid_request():
    response = APIClient().post("/v1/_test/echo", data=b'{"to": "a@x",', content_type="application/json")
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request"
    assert "JSON" in error["message"]


def test_another_media_type_is_a_415_in_the_envelope():
    response = APIClient().post("/v1/_test/echo", data=b"to=a@x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert _error(response)["type"] == "invalid_request"


def test_json_is_accepted():
    response = APIClient().post("/v1/_test/echo", data=json.dumps({"a": 1}), content_type="application/json")
    assert response.json() == {"received": {"a": 1}}


@override_settings(API_MAX_REQUEST_BYTES=1024)
def test_an_oversized_body_is_refused_before_it_is_read():
    body = json.dumps({"text": "x" * 2000})
    response = APIClient().post("/v1/_test/echo", data=body, content_type="application/json")
    assert response.status_code == 413
    error = _error(response)
    assert error["type"] == "payload_too_large"
    assert "1024" in error["message"]


@pytest.mark.parametrize("authenticated", [False, True])
def test_too_many_query_parameters_are_invalid_request_not_a_500(alice_api, authenticated, caplog):
    # Django refuses more than DATA_UPLOAD_MAX_NUMBER_FIELDS; DRF reads the query (content
    # negotiation) before the key: anyone could make a 500 and an error log line with its traceback.
    client = alice_api if authenticated else APIClient()
    client.raise_request_exception = False
    query = "&".join("a=" for _ in range(1001))
    response = client.get(f"/v1/messages?{query}")
    assert response.status_code == 400
    assert _error(response) == {"type": "invalid_request", "message": "The request has too many query parameters."}
    assert not [r for r in caplog.records if r.levelname == "ERROR" and r.name == "drake.errors"]


def test_a_host_not_served_is_a_400_in_the_envelope():
    response = APIClient().get("/v1/account", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert _error(response) == {"type": "invalid_request", "message": "The Host header names no host served here."}


def test_a_crash_is_a_500_without_internals(caplog):
    client = APIClient()
    client.raise_request_exception = False
    response = client.get("/v1/_test/boom")
    assert response.status_code == 500
    error = _error(response)
    assert error["type"] == "internal_error"
    assert "hunter2" not in response.content.decode()
    assert "Traceback" not in response.content.decode()


def test_console_404s_stay_html(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "text/html" in response["Content-Type"]


@pytest.mark.parametrize(
    "url",
    ["/v1/messages/msg_%00x", "/v1/messages?starting_after=msg_%00", "/v1/senders/snd_%00"],
)
def test_a_nul_in_the_url_is_invalid_request(alice_api, url):
    """PostgreSQL cannot compare text holding a NUL: each of these was a 500 (a review)."""
    response = alice_api.get(url)
    assert response.status_code == 400, response.content
    assert _error(response) == {"type": "invalid_request", "message": "The URL holds a NUL character (%00)."}


@pytest.mark.urls("drake.urls")
@pytest.mark.parametrize("url", ["/messages/msg_%00x/", "/senders/snd_%00/"])
def test_a_nul_in_a_console_url_is_a_400(client, alice, url):
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 400
    assert b"NUL" in response.content


@pytest.mark.parametrize("path", ["/v1/senders", "/v1/send"])
def test_json_nested_too_deeply_is_invalid_request(alice_api, path):
    """100,000 "[" fit in a request and exhaust Python's JSON parser: a 500 before (a review)."""
    response = alice_api.post(path, data=b"[" * 100_000, content_type="application/json")
    assert response.status_code == 400, response.content
    assert _error(response)["type"] == "invalid_request"
    assert "nested too deeply" in _error(response)["message"]


@pytest.mark.parametrize("path", ["/v1/account", "/v1/messages", "/v1/openapi.json"])
def test_a_format_query_parameter_is_no_404(alice_api, path):
    """DRF read `?format=` as a renderer to pick, and answered a name it has none for with
    404 not_found: an endpoint that exists said it did not. It is a query parameter no
    endpoint takes, ignored as any other."""
    response = alice_api.get(f"{path}?format=xml")
    assert response.status_code == 200, response.content


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/v1/account", "/v1/messages", "/v1/senders"])
def test_with_the_database_unreachable_every_endpoint_answers_503_not_500(alice_api, path, caplog):
    """POST /v1/send said 503 service_unavailable when its connection was gone; every other
    endpoint a 500 internal_error with a logged traceback, for an outage to retry through."""
    from django.db import connection

    from drake.testing.db import backend_pid, terminate

    if connection.vendor != "postgresql":
        pytest.skip("drops a PostgreSQL connection")
    alice_api.raise_request_exception = False
    terminate(backend_pid())
    response = alice_api.get(path)
    assert response.status_code == 503, response.content
    assert _error(response)["type"] == "service_unavailable"
    assert int(response["Retry-After"]) > 0
    assert not [r for r in caplog.records if r.name == "drake.errors" and r.exc_info]
    connection.close_if_unusable_or_obsolete()  # The request's end: the error closes it.
    assert alice_api.get(path).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/senders", {"provider": "\ud800", "from_email": "alice@example.org", "password": "pw"}),
        ("/v1/senders", {"provider": "gmail", "from_email": "alice@example.org", "password": "pw", "\udfff": 1}),
        ("/v1/send", {"sender": "snd_x", "to": "bob@example.com", "subject": "Hi", "text": "Hi", "\ud800": 1}),
    ],
)
def test_an_error_quoting_a_lone_surrogate_is_a_400_not_a_500(alice_api, path, body):
    """Valid JSON ("\\ud800") quoted back in the error's message or field ("not a valid
    choice", "Unknown field"): UTF-8 cannot carry it, and rendering the 400 was a 500."""
    alice_api.raise_request_exception = False
    response = alice_api.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert _error(response)["type"] == "invalid_request"


@pytest.fixture
def silent_redis():
    from drake.testing.smtp import SilentServer

    server = SilentServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize("request_of", ["account", "send"])
@pytest.mark.parametrize("down", ["refusing", "silent"])
def test_with_the_shared_cache_unreachable_the_api_answers_503_not_500(
    settings, alice, alice_key, silent_redis, request_of, down
):
    """Redis down (rate limits live there): every call was a 500 internal_error with a logged
    traceback (found by an API review), and a Redis that took the connection and never
    answered held the request for good (no socket timeout). Nothing was queued: 503, retry
    shortly."""
    from drake.testing.smtp import free_port
    from senders import actions as sender_actions

    sender = sender_actions.create_sender(
        alice, {"provider": "gmail", "from_email": "alice@example.org", "password": "app password"}
    )
    port = free_port() if down == "refusing" else silent_redis.port
    # The socket timeouts settings.py gives a Redis cache (test_settings.py), shorter here.
    options = {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}
    settings.CACHES = {
        "default": {"BACKEND": "drake.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0", "OPTIONS": options}
    }
    api = APIClient(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    if request_of == "account":
        response = api.get("/v1/account")
    else:
        body = {"sender": sender.public_id, "to": "bob@example.com", "subject": "Hi", "text": "Hello"}
        response = api.post("/v1/send", body, format="json")
    assert response.status_code == 503
    error = _error(response)
    assert error["type"] == "service_unavailable"
    assert int(response["Retry-After"]) > 0
    from relay.models import Message

    assert not Message.objects.exists()


@pytest.mark.parametrize("path", ["/login/", "/signup/"])
@pytest.mark.parametrize("down", ["refusing", "silent"])
def test_with_the_shared_cache_unreachable_the_consoles_throttled_forms_answer_503_not_500(
    settings, client, silent_redis, path, down, caplog
):
    """Sign-in and sign-up count attempts in the shared cache (django-ratelimit), outside the
    API's views: with Redis down they were a 500 with a logged traceback."""
    from drake.testing.smtp import free_port

    port = free_port() if down == "refusing" else silent_redis.port
    options = {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}
    settings.CACHES = {
        "default": {"BACKEND": "drake.cache.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0", "OPTIONS": options}
    }
    client.raise_request_exception = False
    response = client.post(path, {"username": "alice@example.com", "email": "new@example.com", "password": "x"})
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "Try again" in response.content.decode()
    assert not [r for r in caplog.records if r.exc_info]  # Django still notes the 503, without a traceback.


def test_the_console_has_its_own_404_and_500_pages(client, alice):
    """They were Django's bare "Not Found" and "Server Error" (a console review)."""
    client.force_login(alice)
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert "Page not found" in missing.content.decode() and "Back to the dashboard" in missing.content.decode()
    client.raise_request_exception = False
    broken = client.get("/_test/boom/")
    assert broken.status_code == 500
    page = broken.content.decode()
    assert "Something went wrong" in page and "hunter2" not in page
    assert client.get("/v1/nothing-here")["Content-Type"] == "application/json"  # The API stays JSON.
