"""Verifying a sender against servers that misbehave: a malformed challenge, a slow server."""

import contextlib
import socket
import threading
import time

import pytest

USER, PASSWORD = "alice@example.org", "right-app-password"


@contextlib.contextmanager
def _scripted(replies, *, delay=0.0):
    """A one-connection SMTP server: the greeting, then one scripted reply per line read
    (each after `delay` seconds); afterwards it answers '250 ok' to anything. Yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def serve():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            try:
                file = conn.makefile("rb")
                queue = list(replies)
                time.sleep(delay)
                conn.sendall(queue.pop(0))
                while not stop.is_set():
                    line = file.readline()
                    if not line:
                        return
                    time.sleep(delay)
                    conn.sendall(queue.pop(0) if queue else b"250 ok\r\n")
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@pytest.fixture
def private_smtp(settings):
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_ALLOWED_PORTS = "*"
    settings.SMTP_VERIFY_TIMEOUT = 1
    return settings


def _sender(api, port):
    body = {
        "provider": "smtp",
        "from_email": USER,
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "password": PASSWORD,
    }
    response = api.post("/v1/senders", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_a_malformed_auth_challenge_is_a_verification_failure_not_a_500(alice_api, private_smtp):
    """smtplib base64-decodes every 334 challenge; a server sending one that is not base64
    raised binascii.Error (a ValueError), which nothing classified: a 500 from verify."""
    alice_api.raise_request_exception = False
    script = [b"220 ready\r\n", b"250-hi\r\n250 AUTH PLAIN LOGIN\r\n", b"334 a\r\n"]
    with _scripted(script) as port:
        sender_id = _sender(alice_api, port)
        response = alice_api.post(f"/v1/senders/{sender_id}/verify")
    assert response.status_code == 422, response.content[:300]
    error = response.json()["error"]
    assert error["type"] == "sender_verification_failed"
    assert PASSWORD not in response.content.decode()


def test_open_connection_classifies_a_malformed_challenge(private_smtp):
    """The delivery transport opens connections the same way: a malformed challenge must be an
    SmtpFailure (the relay pauses the sender), not an exception that fails the task each time."""
    from senders import smtp

    script = [b"220 ready\r\n", b"250-hi\r\n250 AUTH PLAIN LOGIN\r\n", b"334 a\r\n"]
    with _scripted(script) as port, pytest.raises(smtp.SmtpFailure) as failure:
        smtp.open_connection(host="127.0.0.1", port=port, security="none", username=USER, password=PASSWORD, timeout=1)
    assert failure.value.category == "auth_failed"


def test_a_slow_server_cannot_hold_a_verify_for_many_timeouts(alice_api, private_smtp):
    """Each reply was bounded (REPLY_WAITS timeouts) but the session was not: a server that
    answers every command just inside the timeout held verify for a multiple of it, one per
    step (greeting, EHLO, AUTH, QUIT, and STARTTLS's two more). With the default 5 s that is
    past gunicorn's 30 s timeout: the worker is killed and the customer gets no JSON answer."""
    script = [b"220 ready\r\n", b"250-hi\r\n250 AUTH LOGIN\r\n", b"334 UGFzc3dvcmQ6\r\n", b"235 ok\r\n",
              b"221 bye\r\n"]  # fmt: skip
    with _scripted(script, delay=0.8) as port:
        sender_id = _sender(alice_api, port)
        started = time.monotonic()
        response = alice_api.post(f"/v1/senders/{sender_id}/verify")
        elapsed = time.monotonic() - started
    assert response.status_code == 422, response.content
    assert response.json()["error"]["category"] == "timeout"
    # SMTP_VERIFY_TIMEOUT is 1 s here; five replies at 0.8 s each took 4 s.
    assert elapsed < 3 * 1 + 0.5, f"verify held the request for {elapsed:.1f} s"
