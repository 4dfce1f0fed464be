"""POST /v1/senders/{id}/verify against a real SMTP server with real certificates."""

import contextlib
import socket
import threading
import time

import pytest
import trustme

from auditlog.models import AuditEvent
from senders.models import Sender

USER, PASSWORD = "alice@example.org", "right-app-password"


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def trusting(settings, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_ALLOWED_PORTS = "*"
    settings.SMTP_CA_FILE = str(ca_file)
    settings.SMTP_VERIFY_TIMEOUT = 2
    return settings


def _server(ca, security, **kwargs):
    from drake.testing.smtp import SmtpTestServer

    server = SmtpTestServer(security=security, username=USER, password=PASSWORD, ca=ca, **kwargs)
    server.start()
    return server


def _connect(api, port, security, password=PASSWORD):
    body = {
        "provider": "smtp",
        "from_email": USER,
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "password": password,
    }
    response = api.post("/v1/senders", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_it_verifies_with_the_right_password(alice_api, alice, trusting, ca, security):
    server = _server(ca, security)
    try:
        sender_id = _connect(alice_api, server.port, security)
        response = alice_api.post(f"/v1/senders/{sender_id}/verify")
        assert response.status_code == 200, response.content
        assert response.json() == {"verified": True}
        assert server.logins == 1
    finally:
        server.stop()
    sender = Sender.objects.get(public_id=sender_id)
    assert sender.verified_at is not None and sender.last_verify_error == {}
    assert AuditEvent.objects.filter(action="sender.verified", account_id=alice.pk, detail__ok=True).count() == 1


def test_a_wrong_password_is_422_with_535(alice_api, trusting, ca):
    server = _server(ca, "starttls")
    try:
        sender_id = _connect(alice_api, server.port, "starttls", password="wrong")
        response = alice_api.post(f"/v1/senders/{sender_id}/verify")
    finally:
        server.stop()
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "sender_verification_failed"
    assert error["category"] == "auth_failed"
    assert error["smtp_code"] == 535
    assert error["hint"]
    assert "wrong" not in response.content.decode()
    assert Sender.objects.get(public_id=sender_id).verified_at is None


def test_an_untrusted_certificate_is_tls_failed(alice_api, trusting):
    stranger = trustme.CA()  # Not the CA the settings trust.
    server = _server(stranger, "starttls")
    try:
        sender_id = _connect(alice_api, server.port, "starttls")
        response = alice_api.post(f"/v1/senders/{sender_id}/verify")
    finally:
        server.stop()
    assert response.status_code == 422
    assert response.json()["error"]["category"] == "tls_failed"
    # No fallback to plaintext: the password never reached the server.
    assert server.logins == 0


def test_a_server_without_starttls_is_refused(alice_api, trusting, ca):
    server = _server(ca, "none")
    try:
        sender_id = _connect(alice_api, server.port, "starttls")
        response = alice_api.post(f"/v1/senders/{sender_id}/verify")
    finally:
        server.stop()
    assert response.status_code == 422
    assert response.json()["error"]["category"] == "tls_failed"
    assert server.logins == 0


def test_a_closed_port_is_connection_failed(alice_api, trusting):
    from drake.testing.smtp import free_port

    sender_id = _connect(alice_api, free_port(), "starttls")
    response = alice_api.post(f"/v1/senders/{sender_id}/verify")
    assert response.status_code == 422
    assert response.json()["error"]["category"] == "connection_failed"


def test_a_silent_server_times_out_within_the_bound(alice_api, trusting):
    from drake.testing.smtp import SilentServer

    silent = SilentServer()
    silent.start()
    try:
        sender_id = _connect(alice_api, silent.port, "starttls")
        started = time.monotonic()
        response = alice_api.post(f"/v1/senders/{sender_id}/verify")
        elapsed = time.monotonic() - started
    finally:
        silent.stop()
    assert response.status_code == 422
    assert response.json()["error"]["category"] == "timeout"
    # Bounded by SMTP_VERIFY_TIMEOUT (2 s here), never a hung request.
    assert elapsed < 2 * 3


def test_the_guard_applies_to_verify(alice_api, alice, settings):
    from senders import actions

    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_ALLOWED_PORTS = "*"
    sender = actions.create_sender(
        alice,
        {"provider": "smtp", "from_email": USER, "host": "127.0.0.1", "port": 2525, "security": "tls", "password": "x"},
    )
    settings.SMTP_ALLOW_PRIVATE_HOSTS = False
    response = alice_api.post(f"/v1/senders/{sender.public_id}/verify")
    assert response.status_code == 422
    assert response.json()["error"]["category"] == "host_not_allowed"


def test_gmail_534_explains_app_passwords():
    from senders.presets import GMAIL_APP_PASSWORD_HINT, hint_for

    assert (
        hint_for("gmail", 534, "5.7.9 Application-specific password required", "auth_failed") == GMAIL_APP_PASSWORD_HINT
    )


def test_microsoft_550_5_7_30_is_explained():
    from senders.presets import hint_for

    assert "SMTP AUTH" in hint_for(
        "outlook", 550, "5.7.30 Basic authentication is not supported for Client Submission", "rejected"
    )


def test_no_log_line_carries_the_secret(alice_api, trusting, ca, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.request")  # 4xx lines, normally kept quiet
    # The test server logs what it receives (AUTH included, masked); only our loggers matter here.
    caplog.set_level(logging.WARNING, logger="mail.log")
    secret = "log-leak-canary-31337"
    server = _server(ca, "starttls")
    try:
        sender_id = _connect(alice_api, server.port, "starttls", password=secret)
        alice_api.post(f"/v1/senders/{sender_id}/verify")
        alice_api.patch(f"/v1/senders/{sender_id}", {"password": secret + "2"}, format="json")
        alice_api.post(f"/v1/senders/{sender_id}/verify")
    finally:
        server.stop()
    assert caplog.records, "expected some log output to search"
    assert secret not in caplog.text


def test_a_non_ascii_password_is_a_clear_auth_failure(alice_api, trusting, ca):
    """smtplib's AUTH carries ASCII only: a 500 before (a review found it), and in delivery a
    task that raised for ever."""
    from drake.testing.smtp import SmtpTestServer

    server = SmtpTestServer(security="starttls", username=USER, password=PASSWORD, ca=ca).start()
    try:
        body = {"provider": "smtp", "from_email": USER, "host": "127.0.0.1", "port": server.port}
        created = alice_api.post("/v1/senders", {**body, "security": "starttls", "password": "pässwörd"}, format="json")
        assert created.status_code == 201, created.content
        response = alice_api.post(f"/v1/senders/{created.json()['id']}/verify")
    finally:
        server.stop()
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["type"] == "sender_verification_failed"
    assert "ASCII" in error["message"]


@contextlib.contextmanager
def _dripping(line: bytes, *, every: float, first: tuple[bytes, ...] = (), end: bytes = b""):
    """A server for one connection: the replies in `first` (the greeting, then one per command
    read), then, after one more command, `line` every `every` seconds for at most 6 s, then
    `end`. Yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def serve():
        conn, _ = listener.accept()
        with conn:
            try:
                for i, reply in enumerate(first):
                    if i:
                        conn.recv(1024)
                    conn.sendall(reply)
                if first:
                    conn.recv(1024)
                give_up = time.monotonic() + 6
                while not stop.is_set() and time.monotonic() < give_up:
                    conn.sendall(line)
                    time.sleep(every)
                conn.sendall(end)
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def test_a_server_dripping_its_greeting_cannot_hold_a_verify(alice_api, trusting):
    """A '220-' continuation line every 0.3 s: each read is within the timeout, and smtplib
    kept reading for as long as the server liked (8 s, with a 1 s timeout, before). One reply
    takes at most smtp.REPLY_WAITS timeouts now."""
    trusting.SMTP_VERIFY_TIMEOUT = 1
    with _dripping(b"220-still greeting you\r\n", every=0.3) as port:
        body = {"provider": "smtp", "from_email": USER, "host": "127.0.0.1", "port": port, "security": "starttls"}
        sender_id = alice_api.post("/v1/senders", {**body, "password": PASSWORD}, format="json").json()["id"]
        started = time.monotonic()
        response = alice_api.post(f"/v1/senders/{sender_id}/verify")
    elapsed = time.monotonic() - started
    assert response.status_code == 422, response.content
    assert "did not answer in time" in response.json()["error"]["message"]
    assert elapsed < 2 * 1 + 1.5, f"verify held the request for {elapsed:.1f} s"


def test_every_reply_of_a_session_is_bounded(trusting):
    """On a session delivery holds (the pool's), a reply dripped line by line cannot hold the
    worker past REPLY_WAITS timeouts either. Without the bound the reply ends after 6 s and
    NOOP succeeds."""
    import smtplib

    from senders import smtp

    with _dripping(
        b"250-still here\r\n", every=0.2, first=(b"220 ready\r\n", b"250 ok\r\n"), end=b"250 done\r\n"
    ) as port:
        client = smtp.open_connection(host="127.0.0.1", port=port, security="none", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            client.noop()
    assert time.monotonic() - started < smtp.REPLY_WAITS * 0.5 + 1
