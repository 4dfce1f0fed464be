"""A large message to a server that reads it steadily but not fast.

smtplib writes the body with one `sock.sendall`, and a socket's timeout bounds a whole
sendall, not each step of it (TLS sockets alike: one SSL_write). Written so, the body of a
message had to be taken within one SMTP_TIMEOUT (10 s by default): a 7 MB attachment
(RELAY_MAX_ATTACHMENT_BYTES, accepted with a 202) is about 9.6 MB on the wire, which needs
~1 MB/s sustained to the provider; below that every attempt was a `timeout`, until the message
`expired`, although the server never stalled. relay.body writes it 64 KiB at a time, each within
the timeout, and waits for the reply only once the server has taken every byte the kernel
held. (test_transport's "slow but working servers" asks the same of replies: no single wait
is slow, so the exchange must go through.) Scaled down here: a 0.5 s timeout, ~2.4 MB read
at ~0.9 MB/s in 64 KiB steps, a wait of about 70 ms between reads.

What still bounds it: a server that stops reading is a `timeout` after one SMTP_TIMEOUT (its
final dot never arrived: not `unconfirmed`), and the whole body ends by the delivery's time
limit (RELAY_TASK_TIME_LIMIT after the claim), which the lease leaves room for.
"""

import base64
import contextlib
import socket
import ssl
import threading
import time

import pytest

from relay import delivery
from relay.models import DeliveryAttempt, Message, Status
from relay.outcomes import Outcome

pytestmark = pytest.mark.django_db

STEP = 64 * 1024


def _slow_reader(log: list, *, tls: ssl.SSLContext | None = None, stop_after: int | None = None, refusal: bytes = b""):
    """Reads the body STEP bytes each 70 ms; with `stop_after`, reads no more past that many
    bytes and answers `refusal` (or nothing). With `tls`, STARTTLS is offered (and must be used)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no autotuned window
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve(conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 ready\r\n")
        while line := f.readline():
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                offer = b"250-STARTTLS\r\n" if tls and not isinstance(conn, ssl.SSLSocket) else b""
                conn.sendall(b"250-hi\r\n" + offer + b"250 AUTH PLAIN\r\n")
            elif cmd == b"STAR" and tls:
                conn.sendall(b"220 go ahead\r\n")
                conn = tls.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
            elif cmd == b"AUTH":
                conn.sendall(b"235 2.7.0 ok\r\n")
            elif cmd == b"DATA":
                conn.sendall(b"354 go\r\n")
                seen, taken, since_pause = b"", 0, 0
                while True:
                    if stop_after is not None and taken >= stop_after:
                        conn.sendall(refusal)
                        time.sleep(5)  # holds the connection, reads nothing more
                        return
                    chunk = f.read1(STEP)
                    if not chunk:
                        return
                    taken += len(chunk)
                    seen = (seen + chunk)[-5:]
                    if seen.endswith(b"\r\n.\r\n"):
                        break
                    since_pause += len(chunk)
                    if since_pause >= STEP:  # TLS hands over a 16 KiB record at a time
                        since_pause = 0
                        time.sleep(0.07)
                log.append("queued")
                conn.sendall(b"250 2.0.0 queued as X1\r\n")
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_quiet, args=(serve, conn), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def _quiet(serve, conn):
    with contextlib.suppress(OSError, ssl.SSLError):
        serve(conn)


@pytest.fixture
def server_tls(smtp_ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    smtp_ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def _send_large(send, alice, listener, security: str):
    from senders import actions as sender_actions

    sender = sender_actions.create_sender(
        alice,
        {
            "provider": "smtp",
            "from_email": "alice@example.org",
            "host": "127.0.0.1",
            "port": listener.getsockname()[1],
            "security": security,
            "username": "alice@example.org",
            "password": "app-password",
        },
    )
    attachment = base64.b64encode(bytes(range(256)) * (7 * 1024)).decode()  # 1.8 MB, 2.4 MB on the wire
    response = send(via=sender, attachments=[{"filename": "big.bin", "content": attachment}])
    assert response.status_code == 202
    return response.json()["id"]


@pytest.mark.parametrize("security", ["none", "starttls"])
def test_a_large_message_to_a_steady_but_slow_reader_goes_out(
    delivering_here, send, alice, relay_settings, server_tls, security
):
    relay_settings.SMTP_TIMEOUT = 0.5
    relay_settings.RELAY_TASK_TIME_LIMIT = 20
    relay_settings.RELAY_LEASE_SECONDS = 30
    log: list = []
    listener = _slow_reader(log, tls=server_tls if security == "starttls" else None)
    try:
        message_id = _send_large(send, alice, listener, security)
        started = time.monotonic()
        outcome = delivery.deliver(message_id)
        took = time.monotonic() - started
    finally:
        listener.close()
    message = Message.objects.get(public_id=message_id)
    assert message.status == Status.SENT, (
        f"{outcome} after {took:.1f} s: {message.last_error} (the server read every 70 ms, the timeout is 0.5 s)"
    )
    assert log == ["queued"]
    assert took > 1.5  # It did take longer than the reply waits (2 × 0.5 s) allow.


def test_a_server_that_stops_reading_the_body_is_a_timeout_not_unconfirmed(
    delivering_here, send, alice, relay_settings
):
    relay_settings.SMTP_TIMEOUT = 0.5
    relay_settings.RELAY_TASK_TIME_LIMIT = 20
    relay_settings.RELAY_LEASE_SECONDS = 30
    listener = _slow_reader([], stop_after=4 * STEP)
    try:
        message_id = _send_large(send, alice, listener, "none")
        started = time.monotonic()
        assert delivery.deliver(message_id) == Outcome.RETRY
        took = time.monotonic() - started
    finally:
        listener.close()
    (attempt,) = DeliveryAttempt.objects.filter(message__public_id=message_id)
    assert attempt.category == "timeout"
    assert took < 3  # One timeout once it stopped: not the time limit.


def test_a_server_that_refuses_in_the_middle_of_the_body_is_read_as_refusing(
    delivering_here, send, alice, relay_settings
):
    relay_settings.SMTP_TIMEOUT = 0.5
    listener = _slow_reader([], stop_after=4 * STEP, refusal=b"552 5.3.4 Message too big\r\n")
    try:
        message_id = _send_large(send, alice, listener, "none")
        assert delivery.deliver(message_id) == Outcome.FAILED
    finally:
        listener.close()
    (attempt,) = DeliveryAttempt.objects.filter(message__public_id=message_id)
    assert (attempt.category, attempt.smtp_code, attempt.reply) == ("message_rejected", 552, "5.3.4 Message too big")


def test_a_body_slower_than_the_time_limit_ends_by_it(delivering_here, send, alice, relay_settings):
    """~2.7 s of reading; the deliveries' time limit is 1.5 s: the body stops there (its final
    dot unsent), within the room the lease leaves after the limit (drake.checks)."""
    relay_settings.SMTP_TIMEOUT = 0.5
    relay_settings.RELAY_TASK_TIME_LIMIT = 1.5
    relay_settings.RELAY_LEASE_SECONDS = 30
    log: list = []
    listener = _slow_reader(log)
    try:
        message_id = _send_large(send, alice, listener, "none")
        started = time.monotonic()
        assert delivery.deliver(message_id) == Outcome.RETRY
        took = time.monotonic() - started
    finally:
        listener.close()
    assert log == []
    (attempt,) = DeliveryAttempt.objects.filter(message__public_id=message_id)
    assert attempt.category == "timeout"
    assert 1.2 < took < 1.5 + 0.5 + 0.5


# --- relay.body on its own: a small send buffer, as on a real network (not loopback's 4 MB) ---


@pytest.fixture(params=["plain", "tls"])
def slow_link(request, smtp_ca):
    """A connected smtplib client whose socket holds little (SO_SNDBUF), to a reader taking
    STEP bytes each 70 ms; yields (client, received) where received counts what was read."""
    import smtplib

    tls = request.param == "tls"
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    smtp_ca.issue_cert("127.0.0.1").configure_cert(server_context)
    listener = socket.create_server(("127.0.0.1", 0))
    received = [0]

    def read():
        conn, _ = listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        if tls:
            conn = server_context.wrap_socket(conn, server_side=True)
        with conn, contextlib.suppress(OSError, ssl.SSLError):
            since_pause = 0
            while chunk := conn.recv(STEP):
                received[0] += len(chunk)
                since_pause += len(chunk)
                if since_pause >= STEP:
                    since_pause = 0
                    time.sleep(0.07)

    threading.Thread(target=read, daemon=True).start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.connect(listener.getsockname())
    if tls:
        client_context = ssl.create_default_context()
        smtp_ca.configure_trust(client_context)
        sock = client_context.wrap_socket(sock, server_hostname="127.0.0.1")
    sock.settimeout(0.5)
    client = smtplib.SMTP()
    client.sock, client.timeout = sock, 0.5
    yield client, received
    client.close()
    listener.close()


def test_one_sendall_of_a_large_body_times_out_on_a_slow_link(slow_link):
    """What smtplib did: the timeout bounds the whole write (SSLSocket's one SSL_write alike)."""
    client, _ = slow_link
    with pytest.raises(TimeoutError):
        client.sock.sendall(b"x" * (2 * 1024 * 1024))


def test_written_in_chunks_it_goes_through_each_within_the_timeout(slow_link, settings):
    from relay import body

    client, received = slow_link
    data = b"x" * (2 * 1024 * 1024)
    started = time.monotonic()
    assert body.write(client, data, deadline=time.monotonic() + 20) is True
    # Acknowledged: the server's kernel has it all, and its reader all but what that holds
    # (SO_RCVBUF, which Linux doubles, and a TLS record): the reply wait starts only then.
    assert len(data) - received[0] <= 256 * 1024
    assert time.monotonic() - started > 1.5
    assert client.sock.gettimeout() == 0.5
