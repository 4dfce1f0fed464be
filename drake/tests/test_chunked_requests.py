"""Request bodies sent chunked (`Transfer-Encoding: chunked`, no Content-Length), as clients
streaming one do, against a real gunicorn: read as a body with a Content-Length is, and held to
the same API_MAX_REQUEST_BYTES (drake.middleware.ChunkedBodyMiddleware).

Django reads CONTENT_LENGTH bytes of a body, none without one: before, a valid send streamed
chunked was an empty body and a 400, a console form a CSRF 403. One server for the module (a sync
worker, with gunicorn.conf.py as deployed), on the test database: the tests are transactional, so
it sees alice, her key and her sender.
"""

from __future__ import annotations

import http.client
import io
import json
import math
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from django.conf import global_settings

from conftest import PASSWORD
from drake.testing.processes import gunicorn
from drake.testing.worker import database_url
from relay.models import ApiRequest, Message
from senders import actions as sender_actions

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 8192  # The server's API_MAX_REQUEST_BYTES: small, so a body over it is quick to send.


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory) -> Iterator[int]:
    """gunicorn (with the project's gunicorn.conf.py, one worker) on a free loopback port: its port."""
    env = {**os.environ, "DATABASE_URL": database_url(), "API_MAX_REQUEST_BYTES": str(LIMIT)}
    with gunicorn(env, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log") as port:
        yield port


@pytest.fixture
def sender(alice):
    # A Gmail sender needs no server: it is never verified, and no worker delivers here.
    return sender_actions.create_sender(
        alice, {"provider": "gmail", "from_email": "alice@example.org", "from_name": "Alice", "password": "app-pw"}
    )


def send_body(sender, text: str = "Hi Bob", size: int | None = None) -> bytes:
    """A valid send, padded with trailing spaces (still valid JSON) to `size` bytes if given."""
    body = json.dumps({"sender": sender.public_id, "to": "bob@example.com", "subject": "Hello", "text": text}).encode()
    if size is not None:
        assert len(body) <= size
        body += b" " * (size - len(body))
    return body


def post_chunked(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    """POST `body` in chunks of 1000 bytes (http.client frames an iterable without a length
    chunked, as requests does a generator): the answer's status, Location and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=(body[i : i + 1000] for i in range(0, len(body), 1000)), headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("Location"), response.read()
    finally:
        conn.close()


def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request's head and `body` as given, and read the answer: nothing more is sent,
    so the server must answer from what it has, or time out."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


def api_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def test_a_send_streamed_chunked_is_accepted_as_with_a_content_length(server, alice_key, sender):
    body = send_body(sender, text="x" * 3000)
    status, _, answer = post_chunked(server, "/v1/send", body, api_headers(alice_key))
    assert status == 202, answer
    accepted = json.loads(answer)
    assert accepted["status"] == "queued"
    message = Message.objects.get(public_id=accepted["id"])
    # The request's real size, as a Content-Length would have told (rounded up to 1 KiB).
    assert message.size_approx == math.ceil(len(body) / 1024) * 1024 > 1024
    record = ApiRequest.objects.get(endpoint="/v1/send")
    assert (record.status, record.size_bucket) == (202, "1-10K")


def test_a_chunked_body_of_exactly_the_limit_is_accepted(server, alice_key, sender):
    status, _, answer = post_chunked(server, "/v1/send", send_body(sender, size=LIMIT), api_headers(alice_key))
    assert status == 202, answer
    assert Message.objects.count() == 1


def test_a_chunked_body_over_the_limit_is_413_from_its_first_limit_plus_one_bytes(server, alice_key, sender):
    # One chunk of LIMIT + 1 bytes and no end: the answer must come without the rest of the body.
    head = (
        f"POST /v1/send HTTP/1.1\nHost: 127.0.0.1:{server}\nAuthorization: Bearer {alice_key}\n"
        "Content-Type: application/json\nTransfer-Encoding: chunked\n"
    )
    status, body = raw_request(server, head, f"{LIMIT + 1:x}\r\n".encode() + b" " * (LIMIT + 1))
    assert status == 413, body
    error = json.loads(body)["error"]
    assert error == {"type": "payload_too_large", "message": f"The request is over the limit of {LIMIT} bytes."}
    assert not Message.objects.exists()
    record = ApiRequest.objects.get()
    assert (record.status, record.error_type) == (413, "payload_too_large")


def test_a_send_with_a_content_length_is_unchanged(server, alice_key, sender):
    response = requests.post(
        f"http://127.0.0.1:{server}/v1/send", data=send_body(sender), headers=api_headers(alice_key), timeout=10
    )
    assert response.status_code == 202, response.text
    assert Message.objects.filter(public_id=response.json()["id"]).exists()


def test_a_content_length_over_the_limit_is_refused_before_its_body_is_sent(server, alice_key):
    head = (
        f"POST /v1/send HTTP/1.1\nHost: 127.0.0.1:{server}\nAuthorization: Bearer {alice_key}\n"
        f"Content-Type: application/json\nContent-Length: {LIMIT + 1}\n"
    )
    status, body = raw_request(server, head)
    assert status == 413, body
    assert json.loads(body) == {
        "error": {
            "type": "payload_too_large",
            "message": f"The request is {LIMIT + 1} bytes; the limit is {LIMIT} bytes.",
        }
    }


def test_alice_signs_in_to_the_console_with_a_chunked_form(server, alice, settings):
    # Hashed as the server checks it (Django's default hashers), not with the tests' fast one.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    alice.set_password(PASSWORD)
    alice.save(update_fields=["password"])
    session = requests.Session()
    page = session.get(f"http://127.0.0.1:{server}/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    form = urlencode({"csrfmiddlewaretoken": token, "username": "alice@example.org", "password": PASSWORD}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "; ".join(f"{name}={value}" for name, value in session.cookies.items()),
    }
    status, location, answer = post_chunked(server, "/login/", form, headers)
    assert (status, location) == (302, "/dashboard/"), answer[:2000]


def test_a_server_that_does_not_terminate_its_input_keeps_it_unread(alice_key):
    """Without wsgi.input_terminated (runserver, say) reading to the end of the input could wait for
    good: the body stays what Django makes of no Content-Length, an empty one."""
    from drake.wsgi import application

    stream = io.BytesIO(b'{"sender": "snd_x"}')
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/v1/send",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {alice_key}",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.errors": sys.stderr,
    }
    statuses: list[str] = []
    response = application(environ, lambda status, headers: statuses.append(status))
    body = b"".join(response)
    response.close()
    assert statuses == ["400 Bad Request"], body
    assert stream.tell() == 0


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n", b"2\r\n{}\r\n0\r\n\r\n".replace(b"\r\n", b"\n", 1)],
    ids=["size-not-hex", "chunk-missing-crlf", "bare-lf"],
)
def test_a_malformed_chunk_is_a_400_in_the_api_format(server, alice_key, chunks):
    """A broken chunk's framing got gunicorn's HTML error page; an API client reads JSON."""
    head = (
        f"POST /v1/send HTTP/1.1\nHost: 127.0.0.1:{server}\nAuthorization: Bearer {alice_key}\n"
        "Content-Type: application/json\nTransfer-Encoding: chunked\n"
    )
    status, body = raw_request(server, head, chunks)
    assert status == 400, body
    assert json.loads(body)["error"] == {
        "type": "invalid_request",
        "message": "The request body's chunked encoding is malformed.",
    }
    assert not Message.objects.exists()
    assert ApiRequest.objects.get().error_type == "invalid_request"
