"""Slow but working servers: every reply within the timeout, a session longer than a few
timeouts. A whole-exchange deadline (this session's first bound, found by a review) failed
each of these; only one reply is bounded as a whole now (senders.smtp.REPLY_WAITS)."""

import socket
import threading
import time

import pytest

from relay import transport

DATA = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: x\r\n\r\nhello\r\n"


@pytest.fixture
def pool(monkeypatch):
    fresh = transport.SmtpPool()
    monkeypatch.setattr(transport, "pool", fresh)
    yield fresh
    fresh.close_all()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_many_recipients_each_answered_quickly_are_delivered(pool, smtp_server, smtp_sender, settings, pipelining):
    """Every reply comes in 0.1 s, a fifth of SMTP_TIMEOUT; a message to 12 recipients
    (RELAY_MAX_RECIPIENTS is 100) needs 14 replies. No single wait is slow."""
    settings.SMTP_TIMEOUT = 0.5
    smtp_server.pipelining = pipelining
    recipients = [f"r{i}@example.com" for i in range(12)]
    transport.send(smtp_sender, "alice@example.org", ["warm@example.com"], DATA)  # open + pool
    smtp_server.reply_delay = 0.1
    result = transport.send(smtp_sender, "alice@example.org", recipients, DATA)
    assert result.code == 250


def _raw_server(log):
    """An MTA that queues the message on the final dot, then answers 250 after 0.3 s; every
    other reply in 0.4 s or less: each within a 0.5 s timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        with conn:
            f = conn.makefile("rb")
            conn.sendall(b"220 ready\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 hi\r\n")
                elif cmd in (b"MAIL", b"RCPT"):
                    time.sleep(0.4)
                    conn.sendall(b"250 ok\r\n")
                elif cmd == b"DATA":
                    conn.sendall(b"354 go\r\n")
                    while f.readline() not in (b".\r\n", b""):
                        pass
                    log.append("queued")  # an MTA commits the message, then replies
                    time.sleep(0.3)
                    try:
                        conn.sendall(b"250 queued as X1\r\n")
                    except OSError:
                        return
                elif cmd == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return listener


def test_a_message_the_server_queued_is_not_reported_as_a_timeout(relay_settings, alice):
    from senders import smtp

    relay_settings.SMTP_TIMEOUT = 0.5
    log = []
    listener = _raw_server(log)
    try:
        client = smtp.open_connection(host="127.0.0.1", port=listener.getsockname()[1], security="none", timeout=0.5)
        result = transport._transact(client, "a@example.org", ["b@example.com"], DATA, reused=False)
        assert result.code == 250
    finally:
        listener.close()
    assert log == ["queued"]


def test_a_setup_whose_every_reply_is_within_the_timeout_connects(relay_settings):
    """Greeting, EHLO and AUTH each answered in 0.35 s with a 0.5 s timeout (a provider that
    takes its time to log in)."""
    from senders import smtp

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        with conn:
            f = conn.makefile("rb")
            time.sleep(0.35)
            conn.sendall(b"220 ready\r\n")
            while line := f.readline():
                cmd = line[:4].upper()
                if cmd == b"EHLO":
                    time.sleep(0.35)
                    conn.sendall(b"250-hi\r\n250 AUTH PLAIN\r\n")
                elif cmd == b"AUTH":
                    time.sleep(0.35)
                    conn.sendall(b"235 2.7.0 ok\r\n")
                elif cmd == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        client = smtp.open_connection(
            host="127.0.0.1", port=listener.getsockname()[1], security="none", username="u", password="p", timeout=0.5
        )
        client.quit()
    finally:
        listener.close()
