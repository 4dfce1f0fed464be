"""A real SMTP server for tests and benchmarks: aiosmtpd with trustme certificates.

STARTTLS, implicit TLS or plain; AUTH PLAIN/LOGIN that answers 535 to a wrong password;
PIPELINING offered (as Gmail, Outlook and Postfix do) or not; scripted faults (a reply code at
MAIL, RCPT, the DATA command, or after the data), refused recipients, a delay before every reply (a slow server; for a
network's round trip, drake.testing.proxy), a strict mode that refuses bare CR or LF in DATA
(as an anti-smuggling server does), and counters of connections and logins. Binds to
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import tempfile
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
_ids = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    auth_login: str | None
    queue_id: str


class _CountingSMTP(SMTP):
    def __init__(self, owner: SmtpTestServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    _counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # STARTTLS calls this a second time for the same connection: count it once.
        if not self._counted:
            self._counted = True
            self._owner._connected(+1)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self._owner._connected(-1)
        super().connection_lost(exc)

    async def smtp_DATA(self, arg: str) -> None:
        # A scripted refusal of the DATA command itself, before any 354 (stage "data" is the
        # reply after the body).
        fault = self._owner._next_fault("data_command") if self.envelope and self.envelope.rcpt_tos else None
        if fault is not None:
            await self.push(fault)
            if fault.startswith("421"):  # As at the other stages: say it, then hang up.
                asyncio.get_running_loop().call_later(0.05, self.transport.close)
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def __init__(self, owner: SmtpTestServer, *args: Any, **kwargs: Any) -> None:
        self._owner = owner
        super().__init__(*args, **kwargs)

    def factory(self) -> SMTP:
        return _CountingSMTP(self._owner, self.handler, **self.SMTP_kwargs)


class _Handler:
    def __init__(self, owner: SmtpTestServer) -> None:
        self.owner = owner

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # What aiosmtpd does itself when there is no hook.
        if self.owner.pipelining:
            # aiosmtpd reads and answers commands one by one from its buffer, so commands sent
            # together are answered in order, as RFC 2920 asks.
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def _scripted(self, stage: str, server: SMTP) -> str | None:
        if self.owner.reply_delay:
            await asyncio.sleep(self.owner.reply_delay)
        reply = self.owner._next_fault(stage)
        if reply is not None and reply.startswith("421"):
            # "Service closing transmission channel": say it, then hang up.
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
        return reply

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._scripted("mail", server)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = await self._scripted("rcpt", server)
        if reply:
            return reply
        refused = self.owner._refused.get(address.lower())
        if refused:
            if address.lower() in self.owner._hang_up_after:
                # Say it, then drop the connection before reading anything more (a pipelined
                # DATA already sent gets no reply).
                await server.push(refused)
                server.transport.abort()
            return refused
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await self._scripted("data", server)
        if reply:
            return reply
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self.owner.strict and _has_bare_eol(data):
            return "554 5.6.11 Bare CR or LF in message data"
        queue_id = f"Q{next(_ids):08d}"
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.owner._store(Received(envelope.mail_from, list(envelope.rcpt_tos), data, login, queue_id))
        return f"250 2.0.0 OK queued as {queue_id}"


def _has_bare_eol(data: bytes) -> bool:
    stripped = data.replace(b"\r\n", b"")
    return b"\r" in stripped or b"\n" in stripped


class SmtpTestServer:
    def __init__(
        self,
        *,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        hostname: str = "localhost",
        port: int | None = None,
        strict: bool = False,
        pipelining: bool = True,
        ca: trustme.CA | None = None,
    ) -> None:
        if security not in {"starttls", "tls", "none"}:
            raise ValueError(security)
        self.security = security
        self.username, self.password = username, password
        self.hostname = hostname
        self.host = HOST
        self.port = port or free_port()
        self.strict = strict
        self.pipelining = pipelining
        self.ca = ca or trustme.CA()
        self.reply_delay = 0.0
        self.messages: list[Received] = []
        self.connections_open = 0
        self.max_connections_seen = 0
        self.logins = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._faults: dict[str, deque[str]] = defaultdict(deque)
        self._refused: dict[str, str] = {}
        self._hang_up_after: set[str] = set()
        self._controller: _Controller | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="drake-smtp-")
        self.ca_file = str(Path(self._tmp.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        cert = self.ca.issue_cert(hostname, HOST)
        self._server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self._server_context)

    # --- control -------------------------------------------------------------------------
    def start(self) -> SmtpTestServer:
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port, "server_hostname": self.hostname}
        if self.username is not None:
            kwargs["authenticator"] = self._authenticate
        if self.security == "starttls":
            kwargs.update(tls_context=self._server_context, require_starttls=True, auth_require_tls=True)
        elif self.security == "tls":
            kwargs.update(ssl_context=self._server_context, auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        self._controller = _Controller(self, _Handler(self), **kwargs)
        self._controller.start()
        # start() opened one connection of its own to check the server is up.
        deadline = time.monotonic() + 2
        while self.connections_open and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self.max_connections_seen = self.connections_open
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._tmp.cleanup()

    def client_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def fail_next(self, stage: str, code: int, text: str, times: int = 1) -> None:
        if stage not in {"mail", "rcpt", "data_command", "data"}:
            raise ValueError(stage)
        with self._lock:
            self._faults[stage].extend([f"{code} {text}"] * times)

    def reject_recipient(
        self, address: str, code: int = 550, text: str = "5.1.1 User unknown", *, hang_up: bool = False
    ) -> None:
        with self._lock:
            self._refused[address.lower()] = f"{code} {text}"
            if hang_up:
                self._hang_up_after.add(address.lower())
            else:
                self._hang_up_after.discard(address.lower())

    def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout):
                raise AssertionError(f"{len(self.messages)} message(s) arrived, expected {count}")
            return list(self.messages)

    # --- called from the server thread -----------------------------------------------------
    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        with self._lock:
            self.logins += 1
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _next_fault(self, stage: str) -> str | None:
        with self._lock:
            queue = self._faults[stage]
            return queue.popleft() if queue else None

    def _store(self, received: Received) -> None:
        with self._arrived:
            self.messages.append(received)
            self._arrived.notify_all()

    def _connected(self, delta: int) -> None:
        with self._lock:
            self.connections_open += delta
            self.max_connections_seen = max(self.max_connections_seen, self.connections_open)


class SilentServer:
    """Accepts TCP connections and never says a word: for timeout tests."""

    def __init__(self) -> None:
        self.port = free_port()
        self._sock: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._thread: threading.Thread | None = None

    def start(self) -> SilentServer:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, self.port))
        self._sock.listen()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(conn)

    @property
    def accepted(self) -> int:
        """Connections taken so far (how many tries a client made)."""
        return len(self._held)

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        for conn in self._held:
            conn.close()

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """`python -m drake.testing.smtp [--port 2525] [--username U --password P]`: a local SMTP
    server to try 3drake against (README), plain, no TLS, on 127.0.0.1; prints each message's
    envelope and size as it arrives, until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--username", default="me@example.org")
    parser.add_argument("--password", default="local-password")
    args = parser.parse_args()
    server = SmtpTestServer(security="none", username=args.username, password=args.password, port=args.port).start()
    print(f"SMTP on {HOST}:{server.port}, security none, login {args.username} / {args.password}", flush=True)
    shown = 0
    try:
        while True:
            time.sleep(0.2)
            for received in server.messages[shown:]:
                print(
                    f"{received.mail_from} -> {', '.join(received.rcpt_tos)} ({len(received.data)} bytes)", flush=True
                )
            shown = len(server.messages)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
